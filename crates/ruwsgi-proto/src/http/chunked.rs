//! Incremental, allocation-free decoder for chunked request bodies (RFC 9112 §7.1).
//!
//! Design decision: the decoder owns no buffer. The caller hands it whatever bytes arrived;
//! it consumes a prefix and reports either a span of body data *inside that input* (no
//! copy), "need more", or the end of the body. Framing lines are walked one byte at a time
//! through a small state machine, so a chunk-size line or a trailer split across reads needs
//! no reassembly. After an error the decoder stays failed and never yields data again.
//!
//! Strictness: chunk sizes are 1–16 hex digits with no sign and no leading or trailing
//! whitespace. Extensions follow RFC 9112 §7.1.1, `*( BWS ";" BWS name [ BWS "=" BWS value ] )`
//! with a token name and a token or quoted-string value (BWS is SP / HTAB); they are bounded
//! by [`MAX_EXTENSION_BYTES`] and ignored. Whitespace is allowed only where that grammar puts
//! BWS, so a size line never ends in whitespace. Trailer fields are checked like header
//! fields, bounded in total, must not be `Content-Length`, `Transfer-Encoding` or `Host`, and
//! are discarded.

use super::chars::{is_tchar, is_value_byte};
use super::Span;

/// Most bytes of extension text accepted on one chunk-size line: everything after the last
/// hex digit of the size up to (not including) the CR, whitespace included. Longer lines are
/// refused with [`ChunkError::ExtensionTooLong`] as soon as the limit is passed, so a peer
/// cannot make the decoder walk an endless size line.
pub const MAX_EXTENSION_BYTES: usize = 4096;

/// Why a chunked body was refused. The request is answered with [`status`](Self::status) (if
/// nothing was sent yet) and the connection is closed.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk size is not 1*HEXDIG followed by CRLF or by optional whitespace and `;`.
    #[error("invalid chunk size")]
    BadSize,
    /// More than 16 hex digits in a chunk size.
    #[error("chunk size too long")]
    SizeTooLong,
    /// A malformed chunk extension: an empty or non-token name, `=` without a value, a bad
    /// token or quoted-string value (unterminated, a control byte, a bare CR or LF), or
    /// whitespace where the grammar has none (such as at the end of the line).
    #[error("invalid chunk extension")]
    BadExtension,
    /// Chunk extensions longer than [`MAX_EXTENSION_BYTES`].
    #[error("chunk extensions too long")]
    ExtensionTooLong,
    /// A line end other than CRLF after a size line or after chunk data.
    #[error("missing CRLF in chunked body")]
    BadLineEnd,
    /// A malformed trailer field.
    #[error("invalid trailer field")]
    BadTrailer,
    /// A trailer field that may not appear in trailers (Content-Length, Transfer-Encoding,
    /// Host).
    #[error("forbidden trailer field")]
    ForbiddenTrailer,
    /// The trailer section is larger than allowed.
    #[error("trailer section too large")]
    TrailerTooLarge,
}

impl ChunkError {
    /// The HTTP status for this error (always 400).
    pub fn status(&self) -> u16 {
        400
    }
}

/// One step of [`ChunkedDecoder::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkStep {
    /// Body bytes: this `start..end` range of the input given to `decode`.
    Data(Span),
    /// All of the input was consumed without completing anything; call again with more.
    NeedMore,
    /// The body and its trailer section are complete; bytes after `consumed` belong to the
    /// next request.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size,
    /// Whitespace after the size digits: only more whitespace or `;` may follow.
    SizeWs,
    /// After `;`: optional whitespace, then the first byte of an extension name.
    ExtName,
    /// Inside an extension name.
    ExtNameMore,
    /// Whitespace after an extension name: `=` or `;` must follow.
    ExtNameWs,
    /// After `=`: optional whitespace, then the first byte of an extension value.
    ExtValue,
    /// Inside a token extension value.
    ExtToken,
    /// Inside a quoted-string extension value.
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedEscape,
    /// After the closing quote.
    ExtQuotedEnd,
    /// Whitespace after an extension value: `;` must follow.
    ExtValueWs,
    /// CR of the size line seen, LF expected.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// After chunk data: CR expected.
    DataCr,
    /// After chunk data: LF expected.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR of a trailer field line seen, LF expected.
    TrailerLf,
    /// CR of the final empty line seen, LF expected.
    EndLf,
    /// The body is complete.
    Done,
    /// A framing error was found.
    Failed(ChunkError),
}

impl State {
    /// Whether byte `c`, read in this state, is extension text for [`MAX_EXTENSION_BYTES`]:
    /// every byte of a size line after its last hex digit, except the final CR.
    fn counts_as_extension(self, c: u8) -> bool {
        use State::*;
        match self {
            Size => matches!(c, b';' | b' ' | b'\t'),
            SizeWs | ExtName | ExtNameMore | ExtNameWs | ExtValue | ExtToken | ExtQuoted
            | ExtQuotedEscape | ExtQuotedEnd | ExtValueWs => c != b'\r',
            _ => false,
        }
    }
}

/// Longest trailer name worth remembering (the forbidden names are shorter).
const NAME_BUF: usize = 17;

/// Incremental decoder of a chunked body.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size being read, then the data bytes left in the current chunk.
    size: u64,
    digits: u8,
    ext_bytes: usize,
    trailer_bytes: usize,
    max_trailer: usize,
    /// The current trailer name, lower-cased, if it is short enough to be a forbidden one.
    name: [u8; NAME_BUF],
    name_len: usize,
    body_len: u64,
}

impl ChunkedDecoder {
    /// A decoder for one body whose trailer section may take at most `max_trailer_bytes`
    /// bytes (its final CRLF included).
    pub fn new(max_trailer_bytes: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            ext_bytes: 0,
            trailer_bytes: 0,
            max_trailer: max_trailer_bytes,
            name: [0; NAME_BUF],
            name_len: 0,
            body_len: 0,
        }
    }

    /// Body bytes decoded so far (for `limit-post` checks while streaming).
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Data bytes the current chunk still announces: its declared size minus what was
    /// already decoded, and 0 outside chunk data. Known as soon as the size line is read, so
    /// `body_len() + chunk_remaining()` is the body size claimed so far, and a size limit can
    /// refuse an oversized chunk before any of its data arrives.
    pub fn chunk_remaining(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// True once the whole body, trailers included, was decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume a prefix of `input`; returns how many bytes were consumed and what they gave.
    /// The caller loops: after `Data`, call again with the rest of the input; after
    /// `NeedMore`, call again once more bytes arrived. Inputs over 4 GiB are read in parts.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, ChunkStep), ChunkError> {
        let input = &input[..input.len().min(u32::MAX as usize)];
        let mut i = 0;
        loop {
            match self.state {
                State::Done => return Ok((i, ChunkStep::Done)),
                State::Failed(e) => return Err(e),
                _ if i == input.len() => return Ok((i, ChunkStep::NeedMore)),
                State::Data => {
                    let available = (input.len() - i) as u64;
                    let n = self.size.min(available) as usize;
                    self.size -= n as u64;
                    self.body_len += n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((i + n, ChunkStep::Data((i as u32, (i + n) as u32))));
                }
                _ => {
                    if let Err(e) = self.step(input[i]) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    i += 1;
                }
            }
        }
    }

    /// Advance the framing state machine by one byte.
    fn step(&mut self, c: u8) -> Result<(), ChunkError> {
        use State::*;
        if self.state.counts_as_extension(c) {
            self.ext_bytes += 1;
            if self.ext_bytes > MAX_EXTENSION_BYTES {
                return Err(ChunkError::ExtensionTooLong);
            }
        }
        if matches!(
            self.state,
            TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.max_trailer {
                return Err(ChunkError::TrailerTooLarge);
            }
        }
        let ws = c == b' ' || c == b'\t';
        self.state = match (self.state, c) {
            (Size, c) if c.is_ascii_hexdigit() => {
                if self.digits == 16 {
                    return Err(ChunkError::SizeTooLong);
                }
                self.digits += 1;
                // At most 16 digits: cannot overflow.
                self.size = self.size << 4 | u64::from(hex(c));
                Size
            }
            (Size, b';') if self.digits > 0 => ExtName,
            (Size, b'\r') if self.digits > 0 => SizeLf,
            (Size | SizeWs, _) if ws && self.digits > 0 => SizeWs,
            (SizeWs, b';') => ExtName,
            (Size | SizeWs, _) => return Err(ChunkError::BadSize),

            // BWS is allowed after `;`, around `=` and before the next `;`, nowhere else.
            (ExtName | ExtValue | ExtNameWs | ExtValueWs, _) if ws => self.state,
            (ExtName | ExtNameMore, c) if is_tchar(c) => ExtNameMore,
            (ExtNameMore, _) if ws => ExtNameWs,
            (ExtNameMore | ExtNameWs, b'=') => ExtValue,
            (ExtValue | ExtToken, c) if is_tchar(c) => ExtToken,
            (ExtValue, b'"') => ExtQuoted,
            (ExtToken | ExtQuotedEnd, _) if ws => ExtValueWs,
            (ExtQuoted, b'"') => ExtQuotedEnd,
            (ExtQuoted, b'\\') => ExtQuotedEscape,
            (ExtQuoted | ExtQuotedEscape, c) if is_value_byte(c) => ExtQuoted,
            (ExtNameMore | ExtNameWs | ExtToken | ExtQuotedEnd | ExtValueWs, b';') => ExtName,
            (ExtNameMore | ExtToken | ExtQuotedEnd, b'\r') => SizeLf,
            (
                ExtName | ExtNameMore | ExtNameWs | ExtValue | ExtToken | ExtQuoted
                | ExtQuotedEscape | ExtQuotedEnd | ExtValueWs,
                _,
            ) => return Err(ChunkError::BadExtension),

            (SizeLf, b'\n') => {
                let last = self.size == 0;
                self.digits = 0;
                self.ext_bytes = 0;
                if last {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError::BadLineEnd),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (DataCr | DataLf, _) => return Err(ChunkError::BadLineEnd),

            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerName, c) if is_tchar(c) => {
                if self.state == TrailerStart {
                    self.name_len = 0;
                }
                if self.name_len < NAME_BUF {
                    self.name[self.name_len] = c.to_ascii_lowercase();
                }
                self.name_len += 1;
                TrailerName
            }
            (TrailerName, b':') => {
                let name = &self.name[..self.name_len.min(NAME_BUF)];
                if self.name_len <= NAME_BUF
                    && matches!(name, b"content-length" | b"transfer-encoding" | b"host")
                {
                    return Err(ChunkError::ForbiddenTrailer);
                }
                TrailerValue
            }
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, c) if is_value_byte(c) => TrailerValue,
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerStart | TrailerName | TrailerValue | TrailerLf, _) => {
                return Err(ChunkError::BadTrailer)
            }
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(ChunkError::BadLineEnd),

            (Data | Done | Failed(_), _) => unreachable!("handled by decode"),
        };
        Ok(())
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}
