//! Cache operations over the uwsgi protocol (`modifier1` 111).
//!
//! `modifier2` selects the command ([`command`]). The one clients use is the **magic**
//! interface (17): the request body is a vars dict (`cmd`, `key`, `expires`, `size`,
//! `cache`), and for `set`/`update` exactly `size` value bytes follow the packet. A
//! successful operation is answered `(111, len(dict), 17)` + a dict with `status=ok` (and for
//! `get`, `size`, `expires` when the item expires, then the value bytes). A failed one is
//! answered with nothing: the node closes the connection.
//!
//! ruwsgi's extension: a client may add `keep=1` to the request dict. A ruwsgi node then
//! answers a failure with a dict whose `status` is not `ok` ([`FAILED`]) and keeps the
//! connection, so a miss does not cost a reconnect. uWSGI nodes ignore unknown keys, and
//! their clients never send it, so both sides keep their usual behaviour with uWSGI.
//!
//! The older "simple" commands (0 get, 1 set, 2 delete, 3/4 dict get, 5 streamed get) carry
//! a raw key, an array or a dict; their bodies are decoded here too. Everything here is pure:
//! limits are checked before anything is allocated.

use crate::uwsgi::{self, PacketError, PacketHeader, HEADER_LEN, MAX_DATASIZE};

/// The `modifier2` values of cache packets.
pub mod command {
    /// Get by raw key; the reply is `(111, len, 0)` + value, nothing on a miss.
    pub const GET: u8 = 0;
    /// Set in the default cache from an array `[key][value]`; nothing is answered.
    pub const SET: u8 = 1;
    /// Delete a raw key from the default cache; nothing is answered.
    pub const DEL: u8 = 2;
    /// A dict of `key=` / `get=` lookups; values are written raw.
    pub const DICT: u8 = 3;
    /// Same as [`DICT`].
    pub const DICT_ALT: u8 = 4;
    /// Get by raw key; `(111, 0, 1)` + value, or `(111, 0, 0)` on a miss.
    pub const STREAM: u8 = 5;
    /// Full dump for cache sync at startup.
    pub const DUMP: u8 = 6;
    /// The `modifier2` of a dump reply.
    pub const DUMP_REPLY: u8 = 7;
    /// UDP replication: set/update.
    pub const UDP_SET: u8 = 10;
    /// UDP replication: delete.
    pub const UDP_DEL: u8 = 11;
    /// The magic (dict) interface, requests and replies.
    pub const MAGIC: u8 = 17;
}

/// The `status` value ruwsgi nodes answer failures with when the client asked `keep=1`.
pub const FAILED: &[u8] = b"fail";
/// Most pairs accepted in a request or reply dict.
pub const MAX_DICT_PAIRS: usize = 32;
/// Longest `size`/`expires` number accepted (u64 has 20 digits).
const MAX_DIGITS: usize = 20;

/// Why a cache packet or reply was refused (or could not be encoded).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheProtoError {
    /// The body is not a well-formed dict or array.
    #[error("{0}")]
    Packet(#[from] PacketError),
    /// The `cmd` is missing or unknown.
    #[error("unknown cache command")]
    UnknownCommand,
    /// The command needs a key and has none.
    #[error("cache command without a key")]
    NoKey,
    /// `size` is missing, zero, not a number, or above the allowed maximum.
    #[error("bad cache value size")]
    BadSize,
    /// A number in a reply is not decimal.
    #[error("bad number in a cache reply")]
    BadNumber,
    /// The reply does not start with a `(111, _, 17)` header.
    #[error("not a cache reply (modifier1 {0}, modifier2 {1})")]
    NotAReply(u8, u8),
    /// The array of a simple set lacks the key or the value.
    #[error("cache set without a key and a value")]
    NoValue,
}

/// A magic command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Read an item.
    Get,
    /// Store, never overwriting.
    Set,
    /// Store, overwriting.
    Update,
    /// Remove an item.
    Del,
    /// Whether an item is there.
    Exists,
    /// Remove every item of the cache.
    Clear,
}

impl Command {
    /// Its `cmd` value.
    pub fn name(self) -> &'static [u8] {
        match self {
            Command::Get => b"get",
            Command::Set => b"set",
            Command::Update => b"update",
            Command::Del => b"del",
            Command::Exists => b"exists",
            Command::Clear => b"clear",
        }
    }

    fn from_name(name: &[u8]) -> Option<Command> {
        Some(match name {
            b"get" => Command::Get,
            b"set" => Command::Set,
            b"update" => Command::Update,
            b"del" => Command::Del,
            b"exists" => Command::Exists,
            b"clear" => Command::Clear,
            _ => return None,
        })
    }

    /// The command carries a value after the dict.
    pub fn has_value(self) -> bool {
        matches!(self, Command::Set | Command::Update)
    }
}

/// A decoded magic request: slices of the dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicRequest<'a> {
    /// The command.
    pub cmd: Command,
    /// The key (empty for `clear`).
    pub key: &'a [u8],
    /// Seconds from now until the item expires (0: never). A value that is not a
    /// non-negative decimal number counts as 0.
    pub expires: u64,
    /// For `set`/`update`: how many value bytes follow the packet.
    pub size: usize,
    /// The cache name; empty = the default cache.
    pub cache: &'a [u8],
    /// The client asked for `keep=1` (see the module documentation).
    pub keep: bool,
}

/// Walk a dict, calling `f` for each pair; checks the tiling and at most
/// [`MAX_DICT_PAIRS`] pairs, allocating nothing.
fn for_each_pair<'a>(
    dict: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<(), PacketError> {
    let len_at = |pos: usize| -> Option<usize> {
        dict.get(pos..pos + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let mut pos = 0;
    let mut count = 0;
    while pos < dict.len() {
        let klen = len_at(pos).ok_or(PacketError::Trailing)?;
        if klen == 0 {
            return Err(PacketError::ZeroKey);
        }
        let key = dict
            .get(pos + 2..pos + 2 + klen)
            .ok_or(PacketError::Overrun)?;
        pos += 2 + klen;
        let vlen = len_at(pos).ok_or(PacketError::Overrun)?;
        let value = dict
            .get(pos + 2..pos + 2 + vlen)
            .ok_or(PacketError::Overrun)?;
        pos += 2 + vlen;
        count += 1;
        if count > MAX_DICT_PAIRS {
            return Err(PacketError::TooManyVars {
                max: MAX_DICT_PAIRS,
            });
        }
        f(key, value);
    }
    Ok(())
}

/// A decimal number of at most 20 digits.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > MAX_DIGITS || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decode a magic request dict. For `set`/`update`, `size` must be 1..=`max_value` (checked
/// here, before the caller reads or allocates the value).
pub fn parse_magic_request(
    dict: &[u8],
    max_value: usize,
) -> Result<MagicRequest<'_>, CacheProtoError> {
    let mut cmd: &[u8] = b"";
    let mut req = MagicRequest {
        cmd: Command::Get,
        key: b"",
        expires: 0,
        size: 0,
        cache: b"",
        keep: false,
    };
    let mut size: &[u8] = b"";
    for_each_pair(dict, |k, v| match k {
        b"cmd" => cmd = v,
        b"key" => req.key = v,
        b"expires" => req.expires = decimal(v).unwrap_or(0),
        b"size" => size = v,
        b"cache" => req.cache = v,
        b"keep" => req.keep = v == b"1",
        _ => {}
    })?;
    req.cmd = Command::from_name(cmd).ok_or(CacheProtoError::UnknownCommand)?;
    if req.cmd != Command::Clear && req.key.is_empty() {
        return Err(CacheProtoError::NoKey);
    }
    if req.cmd.has_value() {
        req.size = match decimal(size) {
            Some(n) if n > 0 && n <= max_value as u64 => n as usize,
            _ => return Err(CacheProtoError::BadSize),
        };
    }
    Ok(req)
}

/// The arguments of a magic request to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagicCall<'a> {
    /// The command.
    pub cmd: Command,
    /// The key (ignored for `clear`).
    pub key: &'a [u8],
    /// For `set`/`update`: the value (must not be empty).
    pub value: &'a [u8],
    /// For `set`/`update`: seconds until it expires (0: never).
    pub expires: u64,
    /// The cache name on the node; empty = its default cache.
    pub cache: &'a [u8],
    /// Add `keep=1` (ruwsgi's extension, ignored by uWSGI).
    pub keep: bool,
}

/// Append a whole magic request (header, dict, then the value for `set`/`update`) to `out`;
/// nothing is written on error.
pub fn encode_magic_request(
    call: &MagicCall<'_>,
    out: &mut Vec<u8>,
) -> Result<(), CacheProtoError> {
    let mut pairs: [(&[u8], &[u8]); 6] = [(b"", b""); 6];
    let mut n = 0;
    let size_digits = call.value.len().to_string();
    let expires_digits = call.expires.to_string();
    pairs[n] = (b"cmd", call.cmd.name());
    n += 1;
    if call.cmd != Command::Clear {
        if call.key.is_empty() {
            return Err(CacheProtoError::NoKey);
        }
        pairs[n] = (b"key", call.key);
        n += 1;
    }
    if call.cmd.has_value() {
        if call.value.is_empty() {
            return Err(CacheProtoError::BadSize);
        }
        pairs[n] = (b"size", size_digits.as_bytes());
        n += 1;
        if call.expires > 0 {
            pairs[n] = (b"expires", expires_digits.as_bytes());
            n += 1;
        }
    }
    if !call.cache.is_empty() {
        pairs[n] = (b"cache", call.cache);
        n += 1;
    }
    if call.keep {
        pairs[n] = (b"keep", b"1");
        n += 1;
    }
    let pairs = &pairs[..n];
    let mut size = 0;
    for (k, v) in pairs {
        if v.len() > MAX_DATASIZE {
            return Err(PacketError::ItemTooLong.into());
        }
        size += 4 + k.len() + v.len();
    }
    if size > MAX_DATASIZE {
        return Err(PacketError::BlockTooLarge { size }.into());
    }
    out.reserve(HEADER_LEN + size + call.value.len());
    out.extend_from_slice(&header(size as u16, command::MAGIC));
    for (k, v) in pairs {
        put(out, k);
        put(out, v);
    }
    if call.cmd.has_value() {
        out.extend_from_slice(call.value);
    }
    Ok(())
}

fn put(out: &mut Vec<u8>, item: &[u8]) {
    out.extend_from_slice(&(item.len() as u16).to_le_bytes());
    out.extend_from_slice(item);
}

/// A cache packet header.
pub fn header(datasize: u16, modifier2: u8) -> [u8; HEADER_LEN] {
    PacketHeader {
        modifier1: uwsgi::modifier::CACHE,
        datasize,
        modifier2,
    }
    .to_bytes()
}

/// A decoded magic reply dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicReply {
    /// `status` is exactly `ok`.
    pub ok: bool,
    /// `size`: how many value bytes follow (a `get` reply); 0 when absent.
    pub size: u64,
    /// `expires`: absolute unix time the item expires at; 0 when absent.
    pub expires_at: u64,
}

/// Append a successful reply's header and dict. `value` is `Some((len, expires_at))` for a
/// `get` (the caller writes the value bytes after), `None` for the other commands.
pub fn encode_ok_reply(value: Option<(usize, u64)>, out: &mut Vec<u8>) {
    let mut dict = Vec::with_capacity(64);
    put(&mut dict, b"status");
    put(&mut dict, b"ok");
    if let Some((len, expires_at)) = value {
        put(&mut dict, b"size");
        put(&mut dict, len.to_string().as_bytes());
        if expires_at > 0 {
            put(&mut dict, b"expires");
            put(&mut dict, expires_at.to_string().as_bytes());
        }
    }
    out.extend_from_slice(&header(dict.len() as u16, command::MAGIC));
    out.extend_from_slice(&dict);
}

/// Append a failure reply (`status=fail`), for clients that asked `keep=1`.
pub fn encode_failed_reply(out: &mut Vec<u8>) {
    let mut dict = Vec::with_capacity(16);
    put(&mut dict, b"status");
    put(&mut dict, FAILED);
    out.extend_from_slice(&header(dict.len() as u16, command::MAGIC));
    out.extend_from_slice(&dict);
}

/// Read a magic reply header: the length of the dict that follows.
pub fn parse_reply_head(head: [u8; HEADER_LEN]) -> Result<usize, CacheProtoError> {
    let h = uwsgi::parse_header(&head).ok_or(CacheProtoError::NotAReply(head[0], head[3]))?;
    if h.modifier1 != uwsgi::modifier::CACHE || h.modifier2 != command::MAGIC {
        return Err(CacheProtoError::NotAReply(h.modifier1, h.modifier2));
    }
    Ok(h.datasize as usize)
}

/// Decode a magic reply dict.
pub fn parse_magic_reply(dict: &[u8]) -> Result<MagicReply, CacheProtoError> {
    let mut reply = MagicReply {
        ok: false,
        size: 0,
        expires_at: 0,
    };
    let mut bad = false;
    for_each_pair(dict, |k, v| match k {
        b"status" => reply.ok = v == b"ok",
        b"size" => match decimal(v) {
            Some(n) => reply.size = n,
            None => bad = true,
        },
        b"expires" => match decimal(v) {
            Some(n) => reply.expires_at = n,
            None => bad = true,
        },
        _ => {}
    })?;
    if bad {
        return Err(CacheProtoError::BadNumber);
    }
    Ok(reply)
}

/// Decode the array of a simple set (modifier2 1): `[key][value]`, at most 3 items (a third
/// one is ignored).
pub fn parse_simple_set(body: &[u8]) -> Result<(&[u8], &[u8]), CacheProtoError> {
    let items = uwsgi::parse_array(body, 3)?;
    match items[..] {
        [key, value, ..] => Ok((key, value)),
        _ => Err(CacheProtoError::NoValue),
    }
}

/// One lookup of a dict command (modifier2 3/4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictLookup<'a> {
    /// `key=`: the value raw, nothing on a miss.
    Key(&'a [u8]),
    /// `get=`: the value raw, an HTTP 404 on a miss.
    Get(&'a [u8]),
}

/// Decode a dict command body: its `key=` / `get=` pairs in order (empty values skipped).
pub fn parse_dict_command(body: &[u8]) -> Result<Vec<DictLookup<'_>>, CacheProtoError> {
    let mut out = Vec::new();
    for_each_pair(body, |k, v| {
        if v.is_empty() {
            return;
        }
        match k {
            b"key" => out.push(DictLookup::Key(v)),
            b"get" => out.push(DictLookup::Get(v)),
            _ => {}
        }
    })?;
    Ok(out)
}

/// The reply of a dict command's `get=` miss.
pub const HTTP_NOT_FOUND: &[u8] =
    b"HTTP/1.0 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nNot Found";

/// The header of a simple get's reply (modifier2 0) for a value of `len` bytes; `None` when
/// the value does not fit a packet (it is then not answered).
pub fn simple_get_head(len: usize) -> Option<[u8; HEADER_LEN]> {
    (len <= MAX_DATASIZE).then(|| header(len as u16, command::GET))
}

/// The header of a streamed get's reply (modifier2 5): `(111, 0, 1)` when the value follows,
/// `(111, 0, 0)` on a miss.
pub fn stream_head(found: bool) -> [u8; HEADER_LEN] {
    header(0, u8::from(found))
}

#[cfg(test)]
mod tests;
