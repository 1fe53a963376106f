//! Request bodies as the framing says: a `Content-Length`, chunked, or none.
//!
//! The app pulls the body through `wsgi.input`; this module answers each pull from the
//! connection's buffer first and the socket second, waiting at most `socket-timeout` for each
//! byte to arrive. A body that ends early or breaks its framing yields an error on that
//! read and on every later one, so it can never pass for a complete, shorter body.
//!
//! `limit-post` on chunked bodies is checked against what the body *claims*: each chunk's
//! declared size counts as soon as its size line is read, so an oversized chunk is refused
//! before any of its data is waited for. The refusal is remembered ([`BodyState::over_limit`])
//! so the worker can answer 413 in place of the app's response.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::Duration;

use ruwsgi_plugin::BodyError;
use ruwsgi_proto::http::{ChunkStep, ChunkedDecoder};

use crate::buffer::ReadBuf;
use crate::stream::{Stream, WaitFn};

/// Where the body of the current request stands.
#[derive(Debug)]
pub enum BodyState {
    /// No body (or fully read).
    Empty,
    /// `remaining` bytes of a `Content-Length` body are still to come.
    Length {
        /// Bytes not yet handed to the app.
        remaining: u64,
    },
    /// A chunked body being decoded in the connection buffer.
    Chunked {
        /// The decoder's state.
        decoder: Box<ChunkedDecoder>,
        /// Decoded bytes not yet handed out, as absolute offsets into the read buffer.
        pending: (usize, usize),
    },
    /// Reading failed; the same error is reported again.
    Failed(FailKind),
}

/// The remembered kind of a body failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Premature end of stream.
    Truncated,
    /// Chunked framing error.
    Framing(&'static str),
    /// No bytes within the timeout.
    Timeout,
    /// The body (as announced so far) is larger than `limit-post`.
    TooLarge,
    /// Socket error.
    Io,
}

impl FailKind {
    fn to_error(self) -> BodyError {
        match self {
            FailKind::Truncated => BodyError::Truncated,
            FailKind::Framing(m) => BodyError::Framing(m),
            FailKind::Timeout => BodyError::Timeout,
            FailKind::TooLarge => BodyError::Framing("request body exceeds limit-post"),
            FailKind::Io => BodyError::Io(io::Error::other("connection error")),
        }
    }
}

impl BodyState {
    /// True when every body byte was consumed (the connection can serve another request).
    pub fn is_complete(&self) -> bool {
        matches!(self, BodyState::Empty)
    }

    /// True once reading stopped because the body outgrew `limit-post`.
    pub fn over_limit(&self) -> bool {
        matches!(self, BodyState::Failed(FailKind::TooLarge))
    }

    /// Bytes still expected, if the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyState::Empty => Some(0),
            BodyState::Length { remaining } => Some(*remaining),
            BodyState::Chunked { .. } | BodyState::Failed(_) => None,
        }
    }

    /// Exactly `len` bytes of a `Content-Length` body when all of them are already in
    /// `rbuf`, consumed and borrowed from it; `None` (nothing consumed) otherwise.
    pub fn take_buffered<'b>(&mut self, len: usize, rbuf: &'b mut ReadBuf) -> Option<&'b [u8]> {
        let BodyState::Length { remaining } = self else {
            return None;
        };
        if len == 0 || len as u64 > *remaining || rbuf.len() < len {
            return None;
        }
        *remaining -= len as u64;
        if *remaining == 0 {
            *self = BodyState::Empty;
        }
        Some(rbuf.take(len))
    }

    /// Read up to `out.len()` body bytes.
    pub fn read(
        &mut self,
        out: &mut [u8],
        rbuf: &mut ReadBuf,
        stream: &mut Stream,
        timeout: Duration,
        limit_post: u64,
        wait: WaitFn,
    ) -> Result<usize, BodyError> {
        if out.is_empty() {
            return Ok(0);
        }
        let result = match self {
            BodyState::Empty => return Ok(0),
            BodyState::Failed(kind) => return Err(kind.to_error()),
            BodyState::Length { remaining } => {
                let r = read_length(remaining, out, rbuf, stream, timeout, wait);
                if *remaining == 0 {
                    *self = BodyState::Empty;
                }
                r
            }
            BodyState::Chunked { decoder, pending } => {
                let r = read_chunked(
                    decoder,
                    pending,
                    out,
                    rbuf,
                    stream,
                    (timeout, wait),
                    limit_post,
                );
                match r {
                    Ok(0) => {
                        *self = BodyState::Empty;
                        Ok(0)
                    }
                    r => r,
                }
            }
        };
        result.map_err(|kind| {
            *self = BodyState::Failed(kind);
            kind.to_error()
        })
    }
}

/// Wait until the client sends more, for at most `timeout`.
fn wait_readable(stream: &Stream, timeout: Duration, wait: WaitFn) -> Result<(), FailKind> {
    match wait(stream.as_fd(), false, timeout) {
        Ok(true) => Ok(()),
        Ok(false) => Err(FailKind::Timeout),
        Err(_) => Err(FailKind::Io),
    }
}

/// Read more bytes from the socket into the buffer, waiting up to `timeout`.
fn fill(
    rbuf: &mut ReadBuf,
    stream: &mut Stream,
    (timeout, wait): (Duration, WaitFn),
) -> Result<(), FailKind> {
    loop {
        match rbuf.fill_from(stream) {
            Ok(0) if rbuf.is_full() => return Err(FailKind::Framing("chunk line too long")),
            Ok(0) => return Err(FailKind::Truncated),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(stream, timeout, wait)?
            }
            Err(_) => return Err(FailKind::Io),
        }
    }
}

fn read_length(
    remaining: &mut u64,
    out: &mut [u8],
    rbuf: &mut ReadBuf,
    stream: &mut Stream,
    timeout: Duration,
    wait: WaitFn,
) -> Result<usize, FailKind> {
    let want = (out.len() as u64).min(*remaining) as usize;
    if want == 0 {
        return Ok(0);
    }
    if !rbuf.is_empty() {
        let n = rbuf.take_into(&mut out[..want]);
        *remaining -= n as u64;
        return Ok(n);
    }
    // Nothing buffered: read straight into the caller's buffer, no copy.
    loop {
        match stream.read(&mut out[..want]) {
            Ok(0) => return Err(FailKind::Truncated),
            Ok(n) => {
                *remaining -= n as u64;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(stream, timeout, wait)?
            }
            Err(_) => return Err(FailKind::Io),
        }
    }
}

/// Decode chunked body bytes into `out`. With `limit_post` > 0, a size line that takes the
/// announced body past it fails the read at once, before its chunk's data is read.
fn read_chunked(
    decoder: &mut ChunkedDecoder,
    pending: &mut (usize, usize),
    out: &mut [u8],
    rbuf: &mut ReadBuf,
    stream: &mut Stream,
    timeout: (Duration, WaitFn),
    limit_post: u64,
) -> Result<usize, FailKind> {
    loop {
        if pending.0 < pending.1 {
            let n = out.len().min(pending.1 - pending.0);
            out[..n].copy_from_slice(rbuf.slice(pending.0, pending.0 + n));
            pending.0 += n;
            return Ok(n);
        }
        let base = rbuf.start();
        let (consumed, step) = decoder
            .decode(rbuf.data())
            .map_err(|_| FailKind::Framing("bad chunk framing"))?;
        rbuf.consume(consumed);
        if limit_post > 0
            && decoder.body_len().saturating_add(decoder.chunk_remaining()) > limit_post
        {
            return Err(FailKind::TooLarge);
        }
        match step {
            ChunkStep::Data((from, to)) => {
                // The data bytes stay where they are until the next fill, and a fill only
                // happens once `pending` is drained, so the offsets stay valid even if
                // consume() just rewound an emptied buffer.
                *pending = (base + from as usize, base + to as usize);
            }
            ChunkStep::NeedMore => fill(rbuf, stream, timeout)?,
            ChunkStep::Done => return Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered(bytes: &[u8]) -> ReadBuf {
        let mut rbuf = ReadBuf::with_capacity(64);
        let mut src = bytes;
        rbuf.fill_from(&mut src).unwrap();
        rbuf
    }

    #[test]
    fn take_buffered_hands_over_only_complete_buffered_reads() {
        let mut rbuf = buffered(b"hello world, and the next request");
        let mut body = BodyState::Length { remaining: 11 };
        // More than the body, more than buffered, or nothing: refused, nothing consumed.
        assert!(body.take_buffered(12, &mut rbuf).is_none());
        assert!(body.take_buffered(0, &mut rbuf).is_none());
        assert_eq!(body.remaining(), Some(11));
        assert_eq!(body.take_buffered(5, &mut rbuf), Some(&b"hello"[..]));
        assert_eq!(body.remaining(), Some(6));
        assert_eq!(body.take_buffered(6, &mut rbuf), Some(&b" world"[..]));
        assert!(body.is_complete());
        // What follows the body stays for the next request.
        assert_eq!(rbuf.data(), b", and the next request");
        let mut short = buffered(b"abc");
        let mut body = BodyState::Length { remaining: 10 };
        assert!(body.take_buffered(4, &mut short).is_none());
        assert_eq!(short.len(), 3);
        assert!(BodyState::Empty.take_buffered(1, &mut short).is_none());
    }
}
