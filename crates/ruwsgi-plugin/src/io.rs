//! What the worker offers one request in flight.

use std::os::fd::BorrowedFd;

use ruwsgi_proto::Vars;

use crate::error::{BodyError, ResponseError};

/// A parsed request, ready for the app.
#[derive(Debug)]
pub struct Request<'a> {
    /// The CGI variables: `REQUEST_METHOD`, `REQUEST_URI`, `PATH_INFO` (decoded),
    /// `QUERY_STRING`, `SERVER_PROTOCOL`, `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR`,
    /// `REMOTE_PORT`, `SCRIPT_NAME`, `CONTENT_TYPE`, `CONTENT_LENGTH`, `HTTP_*`, and, from
    /// uwsgi peers, whatever else they sent.
    pub vars: &'a Vars,
    /// `http` or `https` (from `HTTPS`, `UWSGI_SCHEME`, `X-Forwarded-Proto` of trusted peers).
    pub scheme: &'a str,
    /// The uwsgi packet's modifier1 (0 for HTTP).
    pub modifier1: u8,
    /// The uwsgi packet's modifier2 (0 for HTTP).
    pub modifier2: u8,
    /// Which core of this worker serves it (0-based).
    pub core_id: u16,
    /// Requests this core completed before this one.
    pub request_id: u64,
}

/// The connection of one request, seen from the plugin.
///
/// The response is built in steps: [`start`](RequestIo::start) with the status, then
/// [`header`](RequestIo::header) for each header, then any number of
/// [`write`](RequestIo::write)/[`send_file`](RequestIo::send_file) calls, then
/// [`finish`](RequestIo::finish). Body bytes may be buffered (up to an implementation limit)
/// until [`flush`](RequestIo::flush) or the finish, so a response whose whole body is known
/// at finish goes out in one write with a `Content-Length`. Implementations validate status and headers (no CR, LF, NUL; names are
/// tokens) and choose the framing: the app's `Content-Length`, else chunked on HTTP/1.1,
/// else close-delimited.
pub trait RequestIo: Send {
    /// Read up to `buf.len()` body bytes, waiting up to `socket-timeout`. `Ok(0)` is the end
    /// of the body as framed (Content-Length reached, last chunk seen, or no body).
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, BodyError>;
    /// Body bytes still expected when the framing says (Content-Length), `None` for chunked.
    fn body_remaining(&self) -> Option<u64>;
    /// The next `len` body bytes, consumed and borrowed from the server's buffer, when all
    /// of them have already arrived (no waiting, no copy into a caller's buffer); `None`,
    /// with nothing consumed, otherwise. A plugin tries this before `read_body`.
    fn take_buffered_body(&mut self, _len: usize) -> Option<&[u8]> {
        None
    }
    /// Begin (or, before anything was sent, replace) the response with a status line such
    /// as `200 OK`. Replacing drops the headers given so far.
    fn start(&mut self, status: &[u8]) -> Result<(), ResponseError>;
    /// Add one response header.
    fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError>;
    /// Append body bytes (sending the head first if it has not gone out).
    fn write(&mut self, data: &[u8]) -> Result<(), ResponseError>;
    /// Send `len` bytes (or to end of file) of `fd` from `offset`, zero-copy when possible.
    fn send_file(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: Option<u64>,
    ) -> Result<u64, ResponseError>;
    /// Send the head (choosing the framing now) and every buffered body byte. PEP 3333 says
    /// a block the app yields must not be held back, so plugins call this after each block
    /// of a streamed body and after each `write()`; a body known complete up front (a list)
    /// is written without flushing and goes out at [`finish`](RequestIo::finish), in one
    /// write with a computed `Content-Length`.
    fn flush(&mut self) -> Result<(), ResponseError> {
        Ok(())
    }
    /// Complete the response: flush the head (with a computed `Content-Length` if nothing
    /// was flushed yet), the last chunk, and the buffered body.
    fn finish(&mut self) -> Result<(), ResponseError>;
    /// True once any byte of the head went to the client.
    fn head_sent(&self) -> bool;
    /// Status code given to [`start`](RequestIo::start), 0 before.
    fn status(&self) -> u16;
    /// The client socket.
    fn connection_fd(&self) -> BorrowedFd<'_>;
    /// Close the client connection now (`uwsgi.disconnect()`); later writes are dropped.
    fn disconnect(&mut self);
}
