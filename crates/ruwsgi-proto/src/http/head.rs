//! The request head: request line and header fields, in one pass over the buffer.
//!
//! Design decision: the parser re-reads the buffer from the start on every call (the caller
//! appends bytes and calls again) and always reports the *first* problem in byte order, so
//! feeding a head in pieces gives exactly the answer of feeding it whole. Incomplete lines
//! are checked as far as they go, and the two size limits are treated as errors located at
//! the first byte past the limit: 414 once the request line runs past `max_request_line`,
//! 431 once the head runs past `max_head` (checked after the request line is complete).
//!
//! Speed (this runs on every request): the request line's end is found with `memchr`; each
//! header line is then scanned once, name then value, checking eight value bytes at a time
//! until its CRLF; nothing is allocated but the caller's reused `headers` vector.
//!
//! Methods are stricter than RFC 9110's token: only `A-Z`, digits, `-`, `_` and `.`, anything
//! else is a 400. Every method in the IANA registry fits; methods are case-sensitive, so `get`
//! is not `GET`, and refusing it is safer than handing the app a look-alike.
//!
//! `CONNECT` is refused with 501: ruwsgi is an origin server and does not tunnel.

use memchr::memchr;

use super::chars::{is_method_byte, is_tchar, is_token, target_run, trim_ows, value_run};
use super::error::{HttpError, Kind};
use super::target::absolute_parts;
use super::{BodyFraming, Head, HeaderSpan, Limits, Span, Version};

const fn err(kind: Kind) -> HttpError {
    HttpError::new(kind)
}

/// Parse a request head from the front of `buf`.
///
/// `Ok(None)` means "need more bytes"; but when the bytes so far already break a limit or a
/// rule, the error is returned at once: a request line longer than `max_request_line` with
/// no line end yet gives 414, a head longer than `max_head` without its empty line gives 431,
/// and a malformed partial line gives 400. Once `buf` is longer than
/// [`Limits::max_buffer`], the answer is never `Ok(None)`.
///
/// `headers` is cleared and filled with the accepted fields in order; fields whose name
/// contains `_` are left out and counted in [`Head::dropped_underscore`]. Leading empty lines
/// (CRLF) before the request line are skipped.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Option<Head>, HttpError> {
    headers.clear();
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let Some((line, mut pos)) = request_line(buf, start, limits.max_request_line)? else {
        return Ok(None);
    };

    let window = &buf[..buf.len().min(limits.max_head)];
    let mut fields = Fields::default();
    let mut count = 0usize;
    loop {
        let (colon, end) = match field_line(window, pos)? {
            FieldLine::Partial if buf.len() > limits.max_head => {
                return Err(err(Kind::HeadTooLarge))
            }
            FieldLine::Partial => return Ok(None),
            FieldLine::End => {
                pos += 2;
                break;
            }
            FieldLine::Field { colon, end } => (colon, end),
        };
        let base = pos;
        pos = end + 2;
        count += 1;
        if count > limits.max_headers {
            return Err(err(Kind::TooManyHeaders));
        }
        let content = &window[base..end];
        let name = &content[..colon];
        if memchr(b'_', name).is_some() {
            fields.dropped_underscore += 1;
            continue;
        }
        let (vs, ve) = trim_range(content, colon + 1);
        let field = HeaderSpan {
            name: span(base, base + colon),
            value: span(base + vs, base + ve),
        };
        headers.push(field);
        fields.apply(name, &content[vs..ve], field.value)?;
    }
    finish(line, fields, pos, limits).map(Some)
}

/// The request line's parts.
struct RequestLine {
    method: Span,
    target: Span,
    version: Version,
}

fn span(a: usize, b: usize) -> Span {
    // Heads are bounded by the limits; buffers beyond 4 GiB are not supported.
    (a as u32, b as u32)
}

/// Split a trailing CR off a line's content.
fn strip_cr(raw: &[u8]) -> (&[u8], bool) {
    match raw.split_last() {
        Some((b'\r', content)) => (content, true),
        _ => (raw, false),
    }
}

/// Offsets of the OWS-trimmed value that starts at `from` in `line`.
fn trim_range(line: &[u8], from: usize) -> (usize, usize) {
    let value = &line[from..];
    let ows = |c: &u8| *c == b' ' || *c == b'\t';
    let a = value.iter().position(|c| !ows(c)).unwrap_or(value.len());
    let b = value.iter().rposition(|c| !ows(c)).map_or(a, |i| i + 1);
    (from + a, from + b)
}

/// Find, check and split the request line that starts at `start`; `Ok(None)` if it is not
/// complete yet. Returns the parts and the position after its CRLF.
fn request_line(
    buf: &[u8],
    start: usize,
    max: usize,
) -> Result<Option<(RequestLine, usize)>, HttpError> {
    let win_end = buf.len().min(max.saturating_add(2));
    let region = buf.get(start..win_end).unwrap_or(&[]);
    let (raw, terminated) = match memchr(b'\n', region) {
        Some(i) => (&region[..i], true),
        None => (region, false),
    };
    let (content, cr) = strip_cr(raw);
    let allowed = max.saturating_sub(start);
    let scan = scan_request_line(&content[..content.len().min(allowed)])?;
    if content.len() > allowed || (!terminated && buf.len() > win_end) {
        return Err(err(Kind::UriTooLong));
    }
    if !terminated {
        return Ok(None);
    }
    if !cr {
        return Err(err(Kind::BareLf));
    }
    let (Some(sp1), Some(sp2)) = (scan.sp1, scan.sp2) else {
        return Err(err(Kind::RequestLine));
    };
    let version = match content[sp2 + 1..] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'1'] => Version::Http11,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0'] => Version::Http10,
        [_, _, _, _, _, _, _, _] => return Err(err(Kind::VersionNotSupported)),
        _ => return Err(err(Kind::Version)),
    };
    let method = &content[..sp1];
    let target = &content[sp1 + 1..sp2];
    check_target_form(method, target)?;
    let line = RequestLine {
        method: span(start, start + sp1),
        target: span(start + sp1 + 1, start + sp2),
        version,
    };
    Ok(Some((line, start + raw.len() + 1)))
}

/// Positions of the two separators found so far.
struct LineScan {
    sp1: Option<usize>,
    sp2: Option<usize>,
}

/// Check a request line, or the part of it received so far, left to right: the first bad
/// byte decides, whatever follows.
fn scan_request_line(line: &[u8]) -> Result<LineScan, HttpError> {
    let mut scan = LineScan {
        sp1: None,
        sp2: None,
    };
    let m = line.iter().position(|&c| !is_method_byte(c));
    let Some(sp1) = m else {
        return Ok(scan);
    };
    if line[sp1] != b' ' {
        return Err(err(Kind::Method));
    }
    if sp1 == 0 {
        return Err(err(Kind::RequestLine));
    }
    scan.sp1 = Some(sp1);
    let t = sp1 + 1;
    let len = target_run(&line[t..]);
    if t + len == line.len() {
        return Ok(scan);
    }
    let sp2 = t + len;
    if line[sp2] != b' ' {
        return Err(err(Kind::Target));
    }
    if len == 0 {
        return Err(err(Kind::RequestLine));
    }
    scan.sp2 = Some(sp2);
    const PATTERN: &[u8; 8] = b"HTTP/0.0";
    for (k, &c) in line[sp2 + 1..].iter().enumerate() {
        let ok = match k {
            5 | 7 => c.is_ascii_digit(),
            0..=6 => c == PATTERN[k],
            _ => false,
        };
        if !ok {
            return Err(err(Kind::Version));
        }
    }
    Ok(scan)
}

/// The target form must suit the method: `*` only for OPTIONS, absolute-form `http(s)://`
/// for any method, origin-form otherwise. CONNECT (authority-form) is not implemented.
fn check_target_form(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    if method == b"CONNECT" {
        return Err(err(Kind::MethodNotImplemented));
    }
    match target {
        [b'/', ..] => Ok(()),
        b"*" if method == b"OPTIONS" => Ok(()),
        b"*" => Err(err(Kind::TargetForm)),
        _ => match absolute_parts(target) {
            Some((_, authority, _)) if !authority.is_empty() && !authority.contains(&b'@') => {
                Ok(())
            }
            Some(_) => Err(err(Kind::Target)),
            None => Err(err(Kind::TargetForm)),
        },
    }
}

/// One header line, as far as it was received.
enum FieldLine {
    /// The line is not complete (and nothing wrong was seen so far).
    Partial,
    /// The empty line that ends the head.
    End,
    /// A field: the colon's offset in the line, and where its CRLF starts (absolute).
    Field { colon: usize, end: usize },
}

/// Scan the header line starting at `pos` left to right, in a single pass: the name's
/// tchars, the colon, then the value up to its CRLF. The first bad byte decides, whatever
/// follows, so a partial line gives the same error as the whole one.
fn field_line(window: &[u8], pos: usize) -> Result<FieldLine, HttpError> {
    let rest = window.get(pos..).unwrap_or(&[]);
    let Some(n) = rest.iter().position(|&c| !is_tchar(c)) else {
        return Ok(FieldLine::Partial);
    };
    match (n, rest[n]) {
        (0, b'\r') => {
            return match rest.get(1) {
                None => Ok(FieldLine::Partial),
                Some(b'\n') => Ok(FieldLine::End),
                Some(_) => Err(err(Kind::HeaderName)),
            }
        }
        (0, b'\n') => return Err(err(Kind::BareLf)),
        (0, b' ' | b'\t') => return Err(err(Kind::ObsFold)),
        (1.., b':') => {}
        _ => return Err(err(Kind::HeaderName)),
    }
    let e = n + 1 + value_run(&rest[n + 1..]);
    match rest.get(e) {
        None => Ok(FieldLine::Partial),
        Some(b'\r') => match rest.get(e + 1) {
            None => Ok(FieldLine::Partial),
            Some(b'\n') => Ok(FieldLine::Field {
                colon: n,
                end: pos + e,
            }),
            Some(_) => Err(err(Kind::HeaderValue)),
        },
        Some(b'\n') => Err(err(Kind::BareLf)),
        Some(_) => Err(err(Kind::HeaderValue)),
    }
}

/// What the fields said, gathered while they are read.
#[derive(Default)]
struct Fields {
    host: Option<Span>,
    content_type: Option<Span>,
    content_length: Option<u64>,
    te_present: bool,
    te_chunked: bool,
    te_unsupported: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    dropped_underscore: u32,
}

impl Fields {
    /// Apply the semantics of one accepted field.
    fn apply(&mut self, name: &[u8], value: &[u8], value_span: Span) -> Result<(), HttpError> {
        let is = |want: &[u8]| name.eq_ignore_ascii_case(want);
        match name.len() {
            4 if is(b"host") => set_once(&mut self.host, value_span, Kind::DuplicateHost)?,
            6 if is(b"expect") => {
                self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            10 if is(b"connection") => {
                for option in value.split(|&c| c == b',').map(trim_ows) {
                    if option.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    }
                }
            }
            12 if is(b"content-type") => set_once(
                &mut self.content_type,
                value_span,
                Kind::DuplicateContentType,
            )?,
            14 if is(b"content-length") => {
                if self.content_length.is_some() {
                    return Err(err(Kind::DuplicateContentLength));
                }
                self.content_length =
                    Some(parse_content_length(value).ok_or(err(Kind::ContentLength))?);
            }
            17 if is(b"transfer-encoding") => self.transfer_encoding(value)?,
            _ => {}
        }
        Ok(())
    }

    /// One `Transfer-Encoding` field: a list of codings, `chunked` last and once.
    fn transfer_encoding(&mut self, value: &[u8]) -> Result<(), HttpError> {
        self.te_present = true;
        for coding in value.split(|&c| c == b',').map(trim_ows) {
            if coding.is_empty() {
                continue; // empty list elements are allowed by the list syntax
            }
            if self.te_chunked {
                // chunked twice, or not the final coding
                return Err(err(Kind::TransferEncoding));
            }
            let name = trim_ows(coding.split(|&c| c == b';').next().unwrap_or(coding));
            if name.eq_ignore_ascii_case(b"chunked") {
                if name.len() != coding.len() {
                    return Err(err(Kind::TransferEncoding)); // chunked takes no parameters
                }
                self.te_chunked = true;
            } else if is_token(name) {
                self.te_unsupported = true;
            } else {
                return Err(err(Kind::TransferEncoding));
            }
        }
        Ok(())
    }
}

/// Record a field that may appear only once.
fn set_once(slot: &mut Option<Span>, value: Span, duplicate: Kind) -> Result<(), HttpError> {
    match slot.replace(value) {
        Some(_) => Err(err(duplicate)),
        None => Ok(()),
    }
}

/// `1*DIGIT` that fits a u64.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// The checks that need the whole head, then the result.
fn finish(
    line: RequestLine,
    fields: Fields,
    consumed: usize,
    limits: &Limits,
) -> Result<Head, HttpError> {
    let framing = if fields.te_present {
        if fields.content_length.is_some() {
            return Err(err(Kind::LengthAndChunked));
        }
        if line.version == Version::Http10 {
            return Err(err(Kind::TransferEncodingHttp10));
        }
        if fields.te_unsupported {
            return Err(err(Kind::UnsupportedCoding));
        }
        if !fields.te_chunked {
            return Err(err(Kind::TransferEncoding));
        }
        BodyFraming::Chunked
    } else {
        match fields.content_length {
            Some(n) => BodyFraming::Length(n),
            None => BodyFraming::None,
        }
    };
    if limits.strict_host && line.version == Version::Http11 && fields.host.is_none() {
        return Err(err(Kind::MissingHost));
    }
    let http11 = line.version == Version::Http11;
    Ok(Head {
        consumed,
        method: line.method,
        target: line.target,
        version: line.version,
        framing,
        keep_alive: !fields.close && (http11 || fields.keep_alive),
        expect_continue: http11 && fields.expect_continue,
        host: fields.host,
        content_type: fields.content_type,
        dropped_underscore: fields.dropped_underscore,
    })
}
