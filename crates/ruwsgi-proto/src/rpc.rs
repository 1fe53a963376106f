//! Remote procedure calls over the uwsgi protocol (`modifier1` 173).
//!
//! A call is one packet whose body is an array (see [`crate::uwsgi::parse_array`]): the
//! function name, then up to [`MAX_ARGS`] arguments. `modifier2` selects how the server
//! answers ([`Mode`]):
//!
//! - **standard** (0): a packet `(173, len, 0)` followed by the result. A result longer than
//!   65535 bytes cannot be described by `datasize`, so it goes as a "large" reply: a packet
//!   `(173, len(dict), 5)` whose body is a vars block holding only `CONTENT_LENGTH`, followed
//!   by that many raw bytes. An empty reply body means "no result".
//! - **raw** (1, and every value without a meaning of its own): only the result bytes.
//! - **HTTP bridge** (2): the body is a vars block; `PATH_INFO` names the function and its
//!   arguments (`/function/arg1/arg2`) and the reply is an HTTP response.
//!
//! Zero-length array items are skipped by the server's parser, so an empty argument never
//! reaches the function (nginx configurations pad with them). Everything here is pure: the
//! client and the server that do the I/O live elsewhere.

use crate::uwsgi::{self, PacketError, PacketHeader, HEADER_LEN, MAX_DATASIZE};
use crate::Vars;

/// Most arguments a call can carry (the name is one more array item).
pub const MAX_ARGS: usize = 254;
/// Longest function name, in bytes (names must be shorter than 256 bytes).
pub const MAX_NAME: usize = 255;
/// `modifier2` of a large reply (a `CONTENT_LENGTH` dict, then the raw result).
pub const LARGE_REPLY: u8 = 5;

/// How the server answers, from the call's `modifier2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0: a uwsgi packet with the result (large form above 65535 bytes).
    Standard,
    /// 1 and every other value: the result bytes alone, then the connection closes.
    /// (3, XML-RPC, and 4, JSON-RPC, have no implementation and fall here too.)
    Raw,
    /// 2: the body is a vars block, `PATH_INFO` is `/function/arg...`, the reply is HTTP.
    Http,
}

impl Mode {
    /// The mode a call packet's `modifier2` asks for.
    pub fn from_modifier2(modifier2: u8) -> Mode {
        match modifier2 {
            0 => Mode::Standard,
            2 => Mode::Http,
            _ => Mode::Raw,
        }
    }
}

/// Why a call or a reply was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcError {
    /// The body is not a well-formed array or vars block.
    #[error("{0}")]
    Packet(#[from] PacketError),
    /// The array holds no item at all, so there is no function name.
    #[error("RPC packet without a function name")]
    NoFunction,
    /// The function name is 256 bytes or longer.
    #[error("RPC function name of {len} bytes (max {MAX_NAME})")]
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_ARGS`] arguments.
    #[error("RPC call with {count} arguments (max {MAX_ARGS})")]
    TooManyArgs {
        /// How many were given.
        count: usize,
    },
    /// A large reply's dict has no usable `CONTENT_LENGTH`.
    #[error("large RPC reply without a valid CONTENT_LENGTH")]
    BadLength,
    /// The reply does not start with a 173 header.
    #[error("not an RPC reply (modifier1 {0})")]
    NotAReply(u8),
}

/// A decoded call: slices of the packet body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    /// The function name.
    pub name: &'a [u8],
    /// The arguments, empty ones already dropped.
    pub args: Vec<&'a [u8]>,
}

/// Decode the array body of a standard or raw call.
pub fn parse_call(body: &[u8]) -> Result<Call<'_>, RpcError> {
    let items = uwsgi::parse_array(body, MAX_ARGS + 1)?;
    let (&name, args) = items.split_first().ok_or(RpcError::NoFunction)?;
    check_name(name)?;
    Ok(Call {
        name,
        args: args.to_vec(),
    })
}

/// Decode an HTTP-bridge path: `PATH_INFO` without its leading `/`, split on `/` with empty
/// segments dropped; the first segment is the function. `None` when no segment is left.
pub fn parse_http_path(path: &[u8]) -> Result<Option<Call<'_>>, RpcError> {
    let mut segments = path.split(|&b| b == b'/').filter(|s| !s.is_empty());
    let Some(name) = segments.next() else {
        return Ok(None);
    };
    check_name(name)?;
    let args: Vec<&[u8]> = segments.collect();
    if args.len() > MAX_ARGS {
        return Err(RpcError::TooManyArgs { count: args.len() });
    }
    Ok(Some(Call { name, args }))
}

fn check_name(name: &[u8]) -> Result<(), RpcError> {
    if name.len() > MAX_NAME {
        return Err(RpcError::NameTooLong { len: name.len() });
    }
    Ok(())
}

/// Append a whole call packet (`modifier2` 0) to `out`; nothing is written on error.
///
/// Errors: an empty or too long name, more than [`MAX_ARGS`] arguments, an item or the whole
/// array over 65535 bytes. Empty arguments are written, but a server drops them.
pub fn encode_call(name: &[u8], args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), RpcError> {
    if name.is_empty() {
        return Err(RpcError::NoFunction);
    }
    check_name(name)?;
    if args.len() > MAX_ARGS {
        return Err(RpcError::TooManyArgs { count: args.len() });
    }
    let size = 2 + name.len() + args.iter().map(|a| 2 + a.len()).sum::<usize>();
    if size > MAX_DATASIZE {
        return Err(PacketError::BlockTooLarge { size }.into());
    }
    let start = out.len();
    out.extend_from_slice(
        &PacketHeader {
            modifier1: uwsgi::modifier::RPC,
            datasize: size as u16,
            modifier2: 0,
        }
        .to_bytes(),
    );
    let mut items: Vec<&[u8]> = Vec::with_capacity(args.len() + 1);
    items.push(name);
    items.extend_from_slice(args);
    if let Err(e) = uwsgi::encode_array(&items, out) {
        out.truncate(start);
        return Err(e.into());
    }
    Ok(())
}

/// Append what precedes a result of `len` bytes in a standard reply: the `(173, len, 0)`
/// header, or for more than 65535 bytes the large form's header and `CONTENT_LENGTH` dict.
/// `len` 0 is the "no result" reply.
pub fn encode_reply_head(len: usize, out: &mut Vec<u8>) {
    if len <= MAX_DATASIZE {
        out.extend_from_slice(&reply_header(len as u16, 0));
        return;
    }
    let digits = len.to_string();
    let key = b"CONTENT_LENGTH";
    let dict = 4 + key.len() + digits.len();
    out.extend_from_slice(&reply_header(dict as u16, LARGE_REPLY));
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(digits.len() as u16).to_le_bytes());
    out.extend_from_slice(digits.as_bytes());
}

fn reply_header(datasize: u16, modifier2: u8) -> [u8; HEADER_LEN] {
    PacketHeader {
        modifier1: uwsgi::modifier::RPC,
        datasize,
        modifier2,
    }
    .to_bytes()
}

/// What the 4-byte header of a standard reply announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyHead {
    /// The result follows: this many bytes (0 = no result).
    Result(usize),
    /// A large reply: a vars dict of this many bytes follows, holding `CONTENT_LENGTH`
    /// (decode it with [`large_reply_length`]), then the result.
    Large(usize),
}

/// Read a reply header. The server must answer with `modifier1` 173 (anything else, such
/// as an HTTP response from a server that is not a uwsgi node, is refused).
pub fn parse_reply_head(header: [u8; HEADER_LEN]) -> Result<ReplyHead, RpcError> {
    let h = uwsgi::parse_header(&header).ok_or(RpcError::NotAReply(header[0]))?;
    if h.modifier1 != uwsgi::modifier::RPC {
        return Err(RpcError::NotAReply(h.modifier1));
    }
    Ok(if h.modifier2 == LARGE_REPLY {
        ReplyHead::Large(h.datasize as usize)
    } else {
        ReplyHead::Result(h.datasize as usize)
    })
}

/// The result length announced by a large reply's dict.
pub fn large_reply_length(dict: &[u8]) -> Result<u64, RpcError> {
    let mut vars = Vars::new();
    let limits = uwsgi::Limits {
        buffer_size: MAX_DATASIZE,
        max_vars: 16,
    };
    uwsgi::parse_vars(dict, &limits, &mut vars)?;
    let value = vars.get(b"CONTENT_LENGTH").ok_or(RpcError::BadLength)?;
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(RpcError::BadLength);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RpcError::BadLength)
}

/// Append an HTTP-bridge response head: `<protocol> <status>`, `Content-Type`,
/// `Content-Length` and the blank line. The body (of `body_len` bytes) follows.
pub fn encode_http_head(
    protocol: &[u8],
    status: &str,
    content_type: &[u8],
    body_len: usize,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(protocol);
    out.push(b' ');
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body_len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The HTTP bridge's status-line protocol: the request's `SERVER_PROTOCOL` when it is
/// `HTTP/<digit>.<digit>`, else `HTTP/1.0`.
pub fn http_protocol(server_protocol: Option<&[u8]>) -> &[u8] {
    match server_protocol {
        Some(p @ [b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            p
        }
        _ => b"HTTP/1.0",
    }
}

/// The HTTP bridge's `Content-Type`: the request's `Accept` when it names one type (not
/// `*` or `*/*`) and is safe to echo in a header, else `application/binary`.
pub fn http_content_type(accept: Option<&[u8]>) -> &[u8] {
    match accept {
        Some(a)
            if !a.is_empty()
                && a != b"*"
                && a != b"*/*"
                && a.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b)) =>
        {
            a
        }
        _ => b"application/binary",
    }
}

#[cfg(test)]
mod tests;
