//! The uWSGI binary protocol: the 4-byte packet header, vars blocks and arrays.
//!
//! A packet is `modifier1:u8, datasize:u16 LE, modifier2:u8` followed by `datasize` bytes. For
//! requests the body is a vars block (`keylen, key, vallen, value`, repeated, lengths u16 LE);
//! RPC and legacy cache packets carry an array (`len, bytes`, repeated). [`modifier`] names
//! the `modifier1` values.
//!
//! Design decision: every parser works in two phases. The first pass walks the block and checks
//! every length, the tiling and the item count against [`Limits`] without touching memory; only
//! a block that passed is copied out. A hostile peer can therefore never make us allocate more
//! than the configured buffer size, and a rejected packet leaves no partial state behind.
//! Parsing is a pure function: magic vars (`UWSGI_*`) are data here, policy lives in the worker.

use crate::Vars;

pub mod modifier;

/// Size of the packet header.
pub const HEADER_LEN: usize = 4;

/// Largest body a packet can describe (`datasize` is a u16).
pub const MAX_DATASIZE: usize = u16::MAX as usize;

/// Hard caps applied while parsing; checked before anything is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted `datasize` (uWSGI's `buffer-size`, default 4096).
    pub buffer_size: usize,
    /// Largest number of key/value pairs in a vars block (default 128).
    pub max_vars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            buffer_size: 4096,
            max_vars: 128,
        }
    }
}

/// The 4-byte packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader {
    /// Selects the handler (request, signal, cache, RPC, ...).
    pub modifier1: u8,
    /// Size of the body that follows the header.
    pub datasize: u16,
    /// Sub-command or flags; meaning depends on `modifier1`.
    pub modifier2: u8,
}

impl PacketHeader {
    /// The header as it goes on the wire.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1, lo, hi, self.modifier2]
    }

    /// Total packet length: header plus body.
    pub fn packet_len(self) -> usize {
        HEADER_LEN + self.datasize as usize
    }

    /// The packet has no body (`datasize` 0): for a request, no vars at all. [`parse_packet`]
    /// accepts such a packet (an empty vars block is well formed), so a server that will not
    /// run an app for it checks this and closes the connection.
    pub fn is_empty(self) -> bool {
        self.datasize == 0
    }
}

/// Outcome of [`parse_packet`] when the bytes so far are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The packet is not complete yet; read more and call again with the longer buffer.
    Incomplete,
    /// A whole packet was parsed.
    Complete {
        /// Its header. A packet with no vars at all is accepted; [`PacketHeader::is_empty`]
        /// tells it apart.
        header: PacketHeader,
        /// Bytes used from the front of the buffer (`4 + datasize`); what follows is the body
        /// of the request (or the next packet).
        consumed: usize,
    },
}

/// Why a packet, block or array was refused (or could not be encoded).
///
/// Every variant means "close the connection": the uwsgi protocol has no error response.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// `datasize` is larger than the configured buffer size.
    #[error("invalid request block size: {size} (max {max})")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A var has an empty key.
    #[error("uwsgi key cannot be empty")]
    ZeroKey,
    /// A length runs past the end of the block.
    #[error("uwsgi item length runs past the end of the block")]
    Overrun,
    /// Bytes left at the end of the block are too few to hold an item.
    #[error("trailing garbage at the end of the uwsgi block")]
    Trailing,
    /// More key/value pairs than `max_vars`.
    #[error("too many uwsgi vars (max {max})")]
    TooManyVars {
        /// The configured limit.
        max: usize,
    },
    /// More array items than allowed.
    #[error("too many uwsgi array items (max {max})")]
    TooManyItems {
        /// The limit given to the parser.
        max: usize,
    },
    /// A key, value or array item longer than 65535 bytes cannot be encoded.
    #[error("uwsgi item longer than 65535 bytes")]
    ItemTooLong,
    /// An encoded block would be longer than 65535 bytes.
    #[error("uwsgi block of {size} bytes exceeds 65535")]
    BlockTooLarge {
        /// The size the block would have.
        size: usize,
    },
}

/// What a server writes back for one subsystem packet (RPC, cache), and whether the
/// connection stays open afterwards.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The header (and any dict, or an HTTP head) to write first.
    pub head: Vec<u8>,
    /// The payload, written after `head`.
    pub body: Vec<u8>,
    /// Close the connection once written (always true when nothing is to be written).
    pub close: bool,
}

impl Answer {
    /// Write nothing and close: the uwsgi protocol's only "no".
    pub fn close_silently() -> Answer {
        Answer {
            close: true,
            ..Answer::default()
        }
    }

    /// Write `head` and `body`, then close.
    pub fn close_with(head: Vec<u8>, body: Vec<u8>) -> Answer {
        Answer {
            head,
            body,
            close: true,
        }
    }

    /// Write `head` and `body` and keep the connection for the next packet.
    pub fn keep(head: Vec<u8>, body: Vec<u8>) -> Answer {
        Answer {
            head,
            body,
            close: false,
        }
    }
}

/// Read the header at the front of `buf`; `None` if fewer than 4 bytes are there.
pub fn parse_header(buf: &[u8]) -> Option<PacketHeader> {
    match *buf {
        [modifier1, lo, hi, modifier2, ..] => Some(PacketHeader {
            modifier1,
            datasize: u16::from_le_bytes([lo, hi]),
            modifier2,
        }),
        _ => None,
    }
}

/// Frame one packet without interpreting its body: `Ok(None)` until `4 + datasize` bytes are
/// there, then the header and the body slice. `datasize > buffer_size` is refused as soon as
/// the header is readable. Use this for packets whose body is not a vars block (RPC arrays,
/// signal numbers).
pub fn parse_frame(
    buf: &[u8],
    buffer_size: usize,
) -> Result<Option<(PacketHeader, &[u8])>, PacketError> {
    let Some(header) = parse_header(buf) else {
        return Ok(None);
    };
    let size = header.datasize as usize;
    if size > buffer_size {
        return Err(PacketError::TooLarge {
            size,
            max: buffer_size,
        });
    }
    Ok(buf
        .get(HEADER_LEN..HEADER_LEN + size)
        .map(|body| (header, body)))
}

/// Parse one complete request packet (header + vars block) from the front of `buf` into `out`
/// (cleared first).
///
/// `datasize > limits.buffer_size` is refused as soon as the 4 header bytes are there, before
/// waiting for the rest. The vars block must be tiled exactly by its items (see
/// [`parse_vars`]).
pub fn parse_packet(buf: &[u8], limits: &Limits, out: &mut Vars) -> Result<Parsed, PacketError> {
    out.clear();
    match parse_frame(buf, limits.buffer_size)? {
        None => Ok(Parsed::Incomplete),
        Some((header, block)) => {
            parse_vars(block, limits, out)?;
            Ok(Parsed::Complete {
                header,
                consumed: header.packet_len(),
            })
        }
    }
}

/// Read a u16 LE length at `pos`, if two bytes are there.
fn read_len(block: &[u8], pos: usize) -> Option<usize> {
    match block.get(pos..pos + 2) {
        Some(&[lo, hi]) => Some(u16::from_le_bytes([lo, hi]) as usize),
        _ => None,
    }
}

/// First phase of [`parse_vars`]: check the tiling and count the pairs.
fn check_vars(block: &[u8], max_vars: usize) -> Result<usize, PacketError> {
    let mut pos = 0;
    let mut count = 0;
    while pos < block.len() {
        let klen = read_len(block, pos).ok_or(PacketError::Trailing)?;
        if klen == 0 {
            return Err(PacketError::ZeroKey);
        }
        pos += 2 + klen;
        let vlen = read_len(block, pos).ok_or(PacketError::Overrun)?;
        pos += 2 + vlen;
        if pos > block.len() {
            return Err(PacketError::Overrun);
        }
        count += 1;
        if count > max_vars {
            return Err(PacketError::TooManyVars { max: max_vars });
        }
    }
    Ok(count)
}

/// Parse a vars block into `out` (cleared first).
///
/// Errors: a zero key length, any length running past the block end, trailing bytes shorter
/// than an item, more than `limits.max_vars` pairs. The block length itself is the caller's
/// business (it came from a checked `datasize`). On error `out` is left empty.
pub fn parse_vars(block: &[u8], limits: &Limits, out: &mut Vars) -> Result<(), PacketError> {
    out.clear();
    let count = check_vars(block, limits.max_vars)?;
    out.reserve(block.len() - 4 * count, count);
    let mut pos = 0;
    while pos < block.len() {
        // The check pass proved every length below is in range.
        let klen = read_len(block, pos).unwrap_or(0);
        let key = &block[pos + 2..pos + 2 + klen];
        pos += 2 + klen;
        let vlen = read_len(block, pos).unwrap_or(0);
        let value = &block[pos + 2..pos + 2 + vlen];
        pos += 2 + vlen;
        out.push(key, value);
    }
    Ok(())
}

/// Size of the vars block [`encode_vars`] would write, after checking each item.
pub fn vars_block_len(vars: &Vars) -> Result<usize, PacketError> {
    let mut size = 0;
    for (key, value) in vars {
        if key.is_empty() {
            return Err(PacketError::ZeroKey);
        }
        if key.len() > MAX_DATASIZE || value.len() > MAX_DATASIZE {
            return Err(PacketError::ItemTooLong);
        }
        size += 4 + key.len() + value.len();
    }
    Ok(size)
}

fn put_item(out: &mut Vec<u8>, item: &[u8]) {
    // Callers checked `item.len() <= 65535`.
    out.extend_from_slice(&(item.len() as u16).to_le_bytes());
    out.extend_from_slice(item);
}

/// Append `vars` as a vars block to `out`.
///
/// Each key must be non-empty and each key and value at most 65535 bytes; nothing is written
/// on error. The block length is not capped here (see [`encode_packet`]).
pub fn encode_vars(vars: &Vars, out: &mut Vec<u8>) -> Result<(), PacketError> {
    let size = vars_block_len(vars)?;
    out.reserve(size);
    for (key, value) in vars {
        put_item(out, key);
        put_item(out, value);
    }
    Ok(())
}

/// Append a whole packet (header + vars block) to `out`; the block must fit in 65535 bytes.
/// Nothing is written on error.
pub fn encode_packet(
    modifier1: u8,
    modifier2: u8,
    vars: &Vars,
    out: &mut Vec<u8>,
) -> Result<(), PacketError> {
    let size = vars_block_len(vars)?;
    if size > MAX_DATASIZE {
        return Err(PacketError::BlockTooLarge { size });
    }
    let header = PacketHeader {
        modifier1,
        datasize: size as u16,
        modifier2,
    };
    out.reserve(HEADER_LEN + size);
    out.extend_from_slice(&header.to_bytes());
    encode_vars(vars, out)
}

/// Parse an array block (RPC arguments, legacy cache set) into slices of `block`.
///
/// Zero-length items are skipped, as uWSGI's RPC server does (nginx users pad odd parameter
/// counts with them); they do not count against `max_items`. A length running past the end
/// or a single trailing byte is an error.
pub fn parse_array(block: &[u8], max_items: usize) -> Result<Vec<&[u8]>, PacketError> {
    // Phase 1: check the tiling and count, so the Vec below is sized once and bounded.
    let mut pos = 0;
    let mut count = 0;
    while pos < block.len() {
        let len = read_len(block, pos).ok_or(PacketError::Trailing)?;
        pos += 2 + len;
        if pos > block.len() {
            return Err(PacketError::Overrun);
        }
        if len > 0 {
            count += 1;
            if count > max_items {
                return Err(PacketError::TooManyItems { max: max_items });
            }
        }
    }
    let mut items = Vec::with_capacity(count);
    let mut pos = 0;
    while pos < block.len() {
        let len = read_len(block, pos).unwrap_or(0);
        if len > 0 {
            items.push(&block[pos + 2..pos + 2 + len]);
        }
        pos += 2 + len;
    }
    Ok(items)
}

/// Append `items` as an array block to `out`. Each item must be at most 65535 bytes and the
/// whole block must fit a packet (65535 bytes). Nothing is written on error.
///
/// Empty items are written as they are, but note that [`parse_array`] skips them.
pub fn encode_array(items: &[&[u8]], out: &mut Vec<u8>) -> Result<(), PacketError> {
    let mut size = 0;
    for item in items {
        if item.len() > MAX_DATASIZE {
            return Err(PacketError::ItemTooLong);
        }
        size += 2 + item.len();
    }
    if size > MAX_DATASIZE {
        return Err(PacketError::BlockTooLarge { size });
    }
    out.reserve(size);
    for item in items {
        put_item(out, item);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
