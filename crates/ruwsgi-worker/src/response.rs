//! The response writer: status and headers from the app, framing chosen by the server.
//!
//! The head is held back until the first body byte that cannot be buffered or until the
//! response finishes. A response whose body is complete at that point (the common case: a
//! list of byte strings) goes out in a single `writev` with a computed `Content-Length`.
//! Otherwise the app's `Content-Length` is used, else chunked encoding on HTTP/1.1, else the
//! body is delimited by closing the connection. Status and headers are validated here, so
//! no app can inject a line into the response.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use ruwsgi_plugin::ResponseError;
use ruwsgi_proto::http::{parse_status, valid_header_name, valid_header_value};

use crate::request::parse_u64;
use crate::stream::{write_all_vectored_with, Stream, WaitFn};

/// Bytes of body buffered before the head is sent and the body streams.
const BUFFER_LIMIT: usize = 64 * 1024;

/// How the response is framed on the wire, decided when the head goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not decided (head not sent).
    Undecided,
    /// `Content-Length` (the app's or computed).
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The body ends when the connection closes.
    Close,
    /// No body may follow (HEAD, 1xx, 204, 304).
    NoBody,
}

/// What the writer needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext {
    /// Answer with `HTTP/1.1` (else `HTTP/1.0`).
    pub http11: bool,
    /// The request was HEAD: never send body bytes.
    pub head_only: bool,
    /// The connection may be kept open after this response.
    pub keep_alive: bool,
    /// Chunked encoding may be used (HTTP/1.1 clients of an HTTP socket; never on uwsgi
    /// sockets, whose peers read to close).
    pub chunked_ok: bool,
    /// Add `Connection` headers (HTTP sockets only).
    pub connection_header: bool,
    /// Write timeout.
    pub timeout: Duration,
    /// How a write waits for a full socket (`wait_fd` in sync mode).
    pub wait: WaitFn,
}

/// Reusable response state of one core.
#[derive(Debug, Default)]
pub struct Response {
    head: Vec<u8>,
    body: Vec<u8>,
    status: u16,
    started: bool,
    head_sent: bool,
    framing: Option<Framing>,
    app_length: Option<u64>,
    app_close: bool,
    /// Body bytes the app produced (sent or, for HEAD, discarded).
    pub body_bytes: u64,
    /// Body bytes that went on the wire.
    sent_body: u64,
    /// Bytes written to the socket (head + body + framing).
    pub tx: u64,
    /// Number of headers in the head (for the request log).
    pub header_count: u32,
    /// Size of the head in bytes (for the request log).
    pub head_bytes: u64,
    /// Set when the connection must not be reused.
    pub must_close: bool,
    /// Set when writing failed; later writes are dropped.
    pub broken: bool,
}

impl Response {
    /// Reset for a new request.
    pub fn reset(&mut self) {
        self.head.clear();
        self.body.clear();
        self.status = 0;
        self.started = false;
        self.head_sent = false;
        self.framing = None;
        self.app_length = None;
        self.app_close = false;
        self.body_bytes = 0;
        self.sent_body = 0;
        self.tx = 0;
        self.header_count = 0;
        self.head_bytes = 0;
        self.must_close = false;
        self.broken = false;
    }

    /// Status code given so far (0 before `start`).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True once the head went out.
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// True once `start` was called.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Begin or replace the response.
    pub fn start(&mut self, status: &[u8], ctx: &ResponseContext) -> Result<(), ResponseError> {
        if self.head_sent {
            return Err(ResponseError::HeadersSent);
        }
        let code = parse_status(status)
            .map_err(|_| ResponseError::BadStatus(String::from_utf8_lossy(status).into_owned()))?;
        self.head.clear();
        self.body.clear();
        self.body_bytes = 0;
        self.app_length = None;
        self.app_close = false;
        self.header_count = 0;
        self.head.extend_from_slice(if ctx.http11 {
            b"HTTP/1.1 "
        } else {
            b"HTTP/1.0 "
        });
        self.head.extend_from_slice(status);
        self.head.extend_from_slice(b"\r\n");
        self.status = code;
        self.started = true;
        Ok(())
    }

    /// Add one header from the app.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
        if !self.started {
            return Err(ResponseError::Framing("header before status"));
        }
        if self.head_sent {
            return Err(ResponseError::HeadersSent);
        }
        if !valid_header_name(name) || !valid_header_value(value) {
            return Err(ResponseError::BadHeader(format!(
                "{}: {}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            )));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_u64(value).ok_or_else(|| {
                ResponseError::BadHeader(format!(
                    "Content-Length: {}",
                    String::from_utf8_lossy(value)
                ))
            })?;
            if self.app_length.is_some_and(|old| old != n) {
                return Err(ResponseError::Framing(
                    "two different Content-Length headers",
                ));
            }
            // Re-emitted once by the framing, in canonical form.
            self.app_length = Some(n);
            return Ok(());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(ResponseError::Framing(
                "Transfer-Encoding is hop-by-hop; the server frames the response",
            ));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close")) {
                self.app_close = true;
            }
            return Ok(());
        } else if name.eq_ignore_ascii_case(b"keep-alive") {
            return Ok(());
        }
        self.head.extend_from_slice(name);
        self.head.extend_from_slice(b": ");
        self.head.extend_from_slice(value);
        self.head.extend_from_slice(b"\r\n");
        self.header_count += 1;
        Ok(())
    }

    fn no_body_status(&self) -> bool {
        self.status < 200 || self.status == 204 || self.status == 304
    }

    /// Append the framing and connection headers and the blank line, choosing the framing.
    fn close_head(&mut self, known: Option<u64>, ctx: &ResponseContext) {
        let framing = if self.no_body_status() {
            Framing::NoBody
        } else if let Some(n) = self.app_length {
            push_length(&mut self.head, n);
            if ctx.head_only {
                Framing::NoBody
            } else {
                Framing::Length
            }
        } else if let Some(n) = known {
            push_length(&mut self.head, n);
            if ctx.head_only {
                Framing::NoBody
            } else {
                Framing::Length
            }
        } else if ctx.head_only {
            Framing::NoBody
        } else if ctx.chunked_ok {
            self.head
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            Framing::Chunked
        } else {
            Framing::Close
        };
        if framing == Framing::Close || self.app_close || !ctx.keep_alive {
            self.must_close = true;
        }
        if ctx.connection_header {
            if self.must_close {
                self.head.extend_from_slice(b"Connection: close\r\n");
            } else if !ctx.http11 {
                self.head.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        self.head.extend_from_slice(b"\r\n");
        self.head_bytes = self.head.len() as u64;
        self.framing = Some(framing);
    }

    /// Append body bytes.
    pub fn write(
        &mut self,
        data: &[u8],
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        if !self.started {
            return Err(ResponseError::Framing("body before start_response"));
        }
        if self.broken {
            return Err(ResponseError::Io(io::ErrorKind::BrokenPipe.into()));
        }
        self.body_bytes += data.len() as u64;
        if let Some(n) = self.app_length {
            if self.body_bytes > n {
                self.must_close = true;
                return Err(ResponseError::TooLong);
            }
        }
        if !self.head_sent {
            if ctx.head_only || self.no_body_status() {
                return Ok(());
            }
            if self.body.is_empty() && self.app_length == Some(self.body_bytes) {
                // The whole announced body in one block (the common `[body]` response):
                // send it with the head straight from the app's buffer, uncopied.
                self.close_head(None, ctx);
                return self.send_head_and(data, stream, ctx);
            }
            self.body.extend_from_slice(data);
            if self.body.len() >= BUFFER_LIMIT {
                self.close_head(None, ctx);
                return self.send_head_and_buffered(stream, ctx);
            }
            return Ok(());
        }
        self.send_body(data, stream, ctx)
    }

    /// Send the closed head and the buffered body in one `writev`, keeping the buffer's
    /// allocation for the next request.
    fn send_head_and_buffered(
        &mut self,
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        let body = std::mem::take(&mut self.body);
        let r = self.send_head_and(&body, stream, ctx);
        self.body = body;
        self.body.clear();
        r
    }

    fn send_head_and(
        &mut self,
        data: &[u8],
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        self.head_sent = true;
        let mut chunk_line = [0u8; 20];
        let (pre, post): (&[u8], &[u8]) =
            if self.framing == Some(Framing::Chunked) && !data.is_empty() {
                (chunk_size_line(data.len(), &mut chunk_line), b"\r\n")
            } else {
                (b"", b"")
            };
        let data = if matches!(self.framing, Some(Framing::NoBody)) {
            &[][..]
        } else {
            data
        };
        let mut iov = [
            IoSlice::new(&self.head),
            IoSlice::new(pre),
            IoSlice::new(data),
            IoSlice::new(post),
        ];
        self.sent_body += data.len() as u64;
        let r = write_all_vectored_with(stream, &mut iov, ctx.timeout, ctx.wait);
        self.account(r)
    }

    fn send_body(
        &mut self,
        data: &[u8],
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        match self.framing {
            Some(Framing::NoBody) => Ok(()),
            Some(Framing::Chunked) => {
                if data.is_empty() {
                    return Ok(());
                }
                let mut line = [0u8; 20];
                let pre = chunk_size_line(data.len(), &mut line);
                let mut iov = [IoSlice::new(pre), IoSlice::new(data), IoSlice::new(b"\r\n")];
                self.sent_body += data.len() as u64;
                let r = write_all_vectored_with(stream, &mut iov, ctx.timeout, ctx.wait);
                self.account(r)
            }
            _ => {
                let mut iov = [IoSlice::new(data)];
                self.sent_body += data.len() as u64;
                let r = write_all_vectored_with(stream, &mut iov, ctx.timeout, ctx.wait);
                self.account(r)
            }
        }
    }

    fn account(&mut self, r: io::Result<u64>) -> Result<(), ResponseError> {
        match r {
            Ok(n) => {
                self.tx += n;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                self.must_close = true;
                Err(ResponseError::Io(e))
            }
        }
    }

    /// Send part of a file.
    pub fn send_file(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: Option<u64>,
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<u64, ResponseError> {
        if !self.started {
            return Err(ResponseError::Framing("body before start_response"));
        }
        let len = match len {
            Some(n) => n,
            None => {
                let size = nix::sys::stat::fstat(fd).map_err(io::Error::from)?.st_size as u64;
                size.saturating_sub(offset)
            }
        };
        if let Some(n) = self.app_length {
            if self.body_bytes + len > n {
                self.must_close = true;
                return Err(ResponseError::TooLong);
            }
        }
        if !self.head_sent {
            let known = if self.body.is_empty() {
                Some(len)
            } else {
                None
            };
            self.close_head(known.filter(|_| self.app_length.is_none()), ctx);
            self.send_head_and_buffered(stream, ctx)?;
        }
        self.body_bytes += len;
        if matches!(self.framing, Some(Framing::NoBody)) || len == 0 {
            return Ok(len);
        }
        let chunked = self.framing == Some(Framing::Chunked);
        if chunked {
            let mut line = [0u8; 20];
            let pre = chunk_size_line(len as usize, &mut line);
            let r =
                write_all_vectored_with(stream, &mut [IoSlice::new(pre)], ctx.timeout, ctx.wait);
            self.account(r)?;
        }
        let r = sendfile_all(stream.as_fd(), fd, offset, len, ctx.timeout, ctx.wait);
        let sent = match r {
            Ok(n) => n,
            Err(e) => {
                self.broken = true;
                self.must_close = true;
                return Err(ResponseError::Io(e));
            }
        };
        self.tx += sent;
        self.sent_body += sent;
        if sent < len {
            // The file shrank: the framing promised more bytes than exist.
            self.must_close = true;
            return Err(ResponseError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended before the announced length",
            )));
        }
        if chunked {
            let r = write_all_vectored_with(
                stream,
                &mut [IoSlice::new(b"\r\n")],
                ctx.timeout,
                ctx.wait,
            );
            self.account(r)?;
        }
        Ok(sent)
    }

    /// Send the head and whatever body is buffered now.
    pub fn flush(
        &mut self,
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        if !self.started {
            return Err(ResponseError::Framing("flush before start_response"));
        }
        if self.broken {
            return Err(ResponseError::Io(io::ErrorKind::BrokenPipe.into()));
        }
        if self.head_sent {
            return Ok(());
        }
        self.close_head(None, ctx);
        self.send_head_and_buffered(stream, ctx)
    }

    /// Complete the response.
    pub fn finish(
        &mut self,
        stream: &mut Stream,
        ctx: &ResponseContext,
    ) -> Result<(), ResponseError> {
        if !self.started {
            return Err(ResponseError::Framing(
                "the app never called start_response",
            ));
        }
        if self.broken {
            return Err(ResponseError::Io(io::ErrorKind::BrokenPipe.into()));
        }
        if !self.head_sent {
            let known = self.body_bytes;
            self.close_head(Some(known), ctx);
            if let Some(n) = self.app_length {
                if !ctx.head_only && !self.no_body_status() && self.body_bytes < n {
                    self.must_close = true;
                }
            }
            return self.send_head_and_buffered(stream, ctx);
        }
        match self.framing {
            Some(Framing::Chunked) => {
                let r = write_all_vectored_with(
                    stream,
                    &mut [IoSlice::new(b"0\r\n\r\n")],
                    ctx.timeout,
                    ctx.wait,
                );
                self.account(r)
            }
            Some(Framing::Length) => {
                if self.app_length.is_some_and(|n| self.sent_body < n) {
                    // Fewer bytes than announced: the client can only tell by a close.
                    self.must_close = true;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Send a complete error response generated by the server (before any app head went out).
    pub fn send_error(&mut self, code: u16, stream: &mut Stream, ctx: &ResponseContext) {
        if self.head_sent {
            self.must_close = true;
            return;
        }
        let reason = reason_phrase(code);
        let mut status = Vec::with_capacity(32);
        status.extend_from_slice(code.to_string().as_bytes());
        status.push(b' ');
        status.extend_from_slice(reason.as_bytes());
        if self.start(&status, ctx).is_err() {
            self.must_close = true;
            return;
        }
        let _ = self.header(b"Content-Type", b"text/plain");
        let body = format!("{code} {reason}\n");
        let _ = self.write(body.as_bytes(), stream, ctx);
        let _ = self.finish(stream, ctx);
    }
}

fn push_length(head: &mut Vec<u8>, n: u64) {
    head.extend_from_slice(b"Content-Length: ");
    crate::decimal::push_u64(head, n);
    head.extend_from_slice(b"\r\n");
}

fn chunk_size_line(len: usize, buf: &mut [u8; 20]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = 18;
    buf[18] = b'\r';
    buf[19] = b'\n';
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Send `len` bytes of `file` from `offset` with sendfile, waiting for the socket as needed.
pub(crate) fn sendfile_all(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    timeout: Duration,
    wait: WaitFn,
) -> io::Result<u64> {
    let mut off = offset as i64;
    let mut sent = 0u64;
    while sent < len {
        let want = (len - sent).min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile64(socket, file, Some(&mut off), want) {
            Ok(0) => break,
            Ok(n) => sent += n as u64,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                if !wait(socket, true, timeout)? {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sent)
}

/// The standard reason phrase of the status codes the server itself sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines() {
        let mut b = [0u8; 20];
        assert_eq!(chunk_size_line(0, &mut b), b"0\r\n");
        assert_eq!(chunk_size_line(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_size_line(4096, &mut b), b"1000\r\n");
    }

    #[test]
    fn decimal() {
        assert_eq!(parse_u64(b"123"), Some(123));
        assert_eq!(parse_u64(b"+1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
