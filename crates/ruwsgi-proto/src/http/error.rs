//! [`HttpError`]: why a request head was refused, and the status that says so.
//!
//! The kind is private so that new reasons can be added without breaking callers; policy
//! reads [`HttpError::status`] (every refusal closes the connection after the response).

use std::fmt;

/// A refused request head. Answer with [`status`](HttpError::status), then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    BareLf,
    RequestLine,
    Method,
    Target,
    TargetForm,
    Version,
    VersionNotSupported,
    UriTooLong,
    HeadTooLarge,
    TooManyHeaders,
    HeaderName,
    HeaderValue,
    ObsFold,
    DuplicateHost,
    MissingHost,
    DuplicateContentType,
    ContentLength,
    DuplicateContentLength,
    LengthAndChunked,
    TransferEncodingHttp10,
    TransferEncoding,
    UnsupportedCoding,
    MethodNotImplemented,
    BodyTooLarge,
}

impl HttpError {
    pub(crate) const fn new(kind: Kind) -> Self {
        HttpError { kind }
    }

    /// The error to answer when a declared body is larger than `limit-post` (413). Built by
    /// the server, never by the parser.
    pub const fn body_too_large() -> Self {
        Self::new(Kind::BodyTooLarge)
    }

    /// The HTTP status to answer with: 400, 413, 414, 431, 501 or 505.
    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::UriTooLong => 414,
            Kind::HeadTooLarge | Kind::TooManyHeaders => 431,
            Kind::UnsupportedCoding | Kind::MethodNotImplemented => 501,
            Kind::VersionNotSupported => 505,
            Kind::BodyTooLarge => 413,
            _ => 400,
        }
    }

    /// A short reason for logs and response bodies.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            Kind::BareLf => "bare LF line ending",
            Kind::RequestLine => "malformed request line",
            Kind::Method => "invalid method",
            Kind::Target => "invalid request target",
            Kind::TargetForm => "request target form not allowed for this method",
            Kind::Version => "malformed HTTP version",
            Kind::VersionNotSupported => "HTTP version not supported",
            Kind::UriTooLong => "request line too long",
            Kind::HeadTooLarge => "request header section too large",
            Kind::TooManyHeaders => "too many header fields",
            Kind::HeaderName => "invalid header field name",
            Kind::HeaderValue => "invalid header field value",
            Kind::ObsFold => "obsolete line folding",
            Kind::DuplicateHost => "duplicate Host",
            Kind::MissingHost => "missing Host",
            Kind::DuplicateContentType => "duplicate Content-Type",
            Kind::ContentLength => "invalid Content-Length",
            Kind::DuplicateContentLength => "duplicate Content-Length",
            Kind::LengthAndChunked => "both Content-Length and Transfer-Encoding",
            Kind::TransferEncodingHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Kind::TransferEncoding => "invalid Transfer-Encoding",
            Kind::UnsupportedCoding => "unsupported transfer coding",
            Kind::MethodNotImplemented => "method not implemented",
            Kind::BodyTooLarge => "request body too large",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for HttpError {}
