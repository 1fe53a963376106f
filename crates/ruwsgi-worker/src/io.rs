//! [`ConnIo`]: the worker's implementation of the plugin's `RequestIo` for one request.
//!
//! One rule overrides the app: once the request body outgrew `limit-post` while no byte of
//! the response head was sent, the app's response (status, headers, body, files) is held
//! back and dropped, and the worker answers 413 after the app returns. The app still sees
//! its body read fail; it just cannot answer as if the body had been fine.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use ruwsgi_plugin::{BodyError, RequestIo, ResponseError};

use crate::body::BodyState;
use crate::buffer::ReadBuf;
use crate::response::{Response, ResponseContext};
use crate::stream::{write_all_vectored_with, Stream};

/// The connection of the request in flight, lent to the plugin for the duration of one call.
pub struct ConnIo<'a> {
    /// The client socket.
    pub stream: &'a mut Stream,
    /// Bytes read past the request head.
    pub rbuf: &'a mut ReadBuf,
    /// Body framing state.
    pub body: &'a mut BodyState,
    /// The response being built.
    pub resp: &'a mut Response,
    /// Facts about the request the writer needs.
    pub ctx: ResponseContext,
    /// `socket-timeout`, for body reads.
    pub read_timeout: Duration,
    /// `limit-post` (0 = none), enforced on chunked bodies as they are decoded.
    pub limit_post: u64,
    /// The client sent `Expect: 100-continue` and has not been told to go on yet.
    pub expect_continue: bool,
    /// `disconnect()` was called.
    pub disconnected: bool,
}

impl ConnIo<'_> {
    /// The body was refused for `limit-post` before the head went out: the app's response
    /// is discarded and the worker answers 413 instead.
    fn refusing(&self) -> bool {
        self.body.over_limit() && !self.resp.head_sent()
    }
}

impl RequestIo for ConnIo<'_> {
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        if self.disconnected {
            return Err(BodyError::Io(std::io::ErrorKind::NotConnected.into()));
        }
        if self.expect_continue {
            self.expect_continue = false;
            if !self.body.is_complete() && !self.resp.head_sent() {
                let mut iov = [IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n")];
                write_all_vectored_with(self.stream, &mut iov, self.ctx.timeout, self.ctx.wait)?;
            }
        }
        self.body.read(
            buf,
            self.rbuf,
            self.stream,
            self.read_timeout,
            self.limit_post,
            self.ctx.wait,
        )
    }

    fn body_remaining(&self) -> Option<u64> {
        self.body.remaining()
    }

    fn take_buffered_body(&mut self, len: usize) -> Option<&[u8]> {
        if self.disconnected || self.expect_continue {
            return None;
        }
        self.body.take_buffered(len, self.rbuf)
    }

    fn start(&mut self, status: &[u8]) -> Result<(), ResponseError> {
        if self.refusing() {
            return Ok(());
        }
        self.resp.start(status, &self.ctx)
    }

    fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
        if self.refusing() {
            return Ok(());
        }
        self.resp.header(name, value)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ResponseError> {
        if self.disconnected {
            return Err(ResponseError::Io(std::io::ErrorKind::NotConnected.into()));
        }
        if self.refusing() {
            return Ok(());
        }
        self.resp.write(data, self.stream, &self.ctx)
    }

    fn send_file(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: Option<u64>,
    ) -> Result<u64, ResponseError> {
        if self.disconnected {
            return Err(ResponseError::Io(std::io::ErrorKind::NotConnected.into()));
        }
        if self.refusing() {
            return Ok(0);
        }
        self.resp.send_file(fd, offset, len, self.stream, &self.ctx)
    }

    fn flush(&mut self) -> Result<(), ResponseError> {
        if self.disconnected {
            return Err(ResponseError::Io(std::io::ErrorKind::NotConnected.into()));
        }
        if self.refusing() {
            return Ok(());
        }
        self.resp.flush(self.stream, &self.ctx)
    }

    fn finish(&mut self) -> Result<(), ResponseError> {
        if self.disconnected || self.refusing() {
            // Refusing: the worker sends the 413 once the plugin returns.
            return Ok(());
        }
        self.resp.finish(self.stream, &self.ctx)
    }

    fn head_sent(&self) -> bool {
        self.resp.head_sent()
    }

    fn status(&self) -> u16 {
        self.resp.status()
    }

    fn connection_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    fn disconnect(&mut self) {
        self.disconnected = true;
        self.resp.must_close = true;
        self.stream.shutdown();
    }
}
