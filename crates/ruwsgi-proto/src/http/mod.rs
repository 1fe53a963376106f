//! Strict HTTP/1.1 request parsing: heads, targets, chunked bodies, response checks.
//!
//! The parser is allocation-free and runtime-free: [`parse_head`] is called on the bytes
//! received so far and answers "need more" (`Ok(None)`), a [`Head`] of spans into the buffer,
//! or an [`HttpError`] that carries the status to answer before closing. Bodies are framed
//! from the head ([`BodyFraming`]) and chunked bodies are decoded incrementally by
//! [`ChunkedDecoder`].
//!
//! Design decision: rejection is preferred to guessing. Every ambiguity that could let a
//! front proxy and this server see different requests (CL with TE, duplicate CL, bare LF,
//! obs-fold, underscore names) is refused or dropped, never repaired.
//!
//! Files by phase: `head` (request line and fields), `target` (request-target forms,
//! splitting, percent-decoding), `chunked` (body decoding), `response` (checks on what an app
//! returns), `error` (the error type), `chars` (byte classes).

mod chars;
mod chunked;
mod error;
mod head;
mod response;
mod target;

#[cfg(test)]
mod tests;

pub use chunked::{ChunkError, ChunkStep, ChunkedDecoder, MAX_EXTENSION_BYTES};
pub use error::HttpError;
pub use head::parse_head;
pub use response::{parse_status, valid_header_name, valid_header_value, ResponseSyntaxError};
pub use target::{percent_decode, split_target, target_authority};

/// Limits applied while reading a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, without its CRLF and counted from the start of the buffer (so
    /// ignored leading empty lines count too). Longer lines are refused with 414.
    pub max_request_line: usize,
    /// Longest head: request line, fields and the final empty line. Longer heads are refused
    /// with 431. The server passes its `buffer-size` here.
    pub max_head: usize,
    /// Most header fields (431 beyond), dropped underscore fields included.
    pub max_headers: usize,
    /// Refuse HTTP/1.1 requests without `Host` (400). Off by default, for compatibility.
    pub strict_host: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head: 4096,
            max_headers: 100,
            strict_host: false,
        }
    }
}

impl Limits {
    /// The buffer length beyond which [`parse_head`] never answers "need more": a reader
    /// whose buffer can hold this many bytes plus one always gets a verdict.
    pub fn max_buffer(&self) -> usize {
        self.max_head.max(self.max_request_line + 2)
    }
}

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    /// The version as written on the wire (and in `SERVER_PROTOCOL`).
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }
}

/// A byte range `start..end` into the buffer that was parsed.
pub type Span = (u32, u32);

/// The bytes of `buf` that `span` covers.
///
/// # Panics
/// If the span does not come from a parse of this buffer (out of range).
pub fn slice(buf: &[u8], span: Span) -> &[u8] {
    &buf[span.0 as usize..span.1 as usize]
}

/// One accepted header field, as spans into the parsed buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSpan {
    /// The field name, as sent (case preserved).
    pub name: Span,
    /// The field value, with leading and trailing OWS trimmed.
    pub value: Span,
}

impl HeaderSpan {
    /// The name's bytes in `buf`.
    pub fn name_in<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        slice(buf, self.name)
    }

    /// The value's bytes in `buf`.
    pub fn value_in<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        slice(buf, self.value)
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// A chunked body follows; decode it with [`ChunkedDecoder`].
    Chunked,
}

/// An accepted request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the buffer used by the head, final empty line included; the body (or the
    /// next request) starts here.
    pub consumed: usize,
    /// The method token.
    pub method: Span,
    /// The raw request-target (origin-form, absolute-form or `*`).
    pub target: Span,
    /// The protocol version.
    pub version: Version,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may serve another request: HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
    /// The `Host` value, if present.
    pub host: Option<Span>,
    /// The `Content-Type` value, if present.
    pub content_type: Option<Span>,
    /// Fields dropped because their name contains `_`.
    pub dropped_underscore: u32,
}
