//! The request-target: its forms, splitting into path and query, percent-decoding.
//!
//! `REQUEST_URI` is the raw target, `QUERY_STRING` the raw query without the fragment, and
//! `PATH_INFO` the percent-decoded path carried as bytes (latin-1 on the Python side). The
//! head parser has already refused whitespace, CTLs and non-ASCII bytes in the target, so
//! these helpers only cut slices; they never fail.

use memchr::{memchr, memchr2};

/// Split an absolute-form target (`http://host/path?q` or `https://...`, scheme compared
/// without case) into scheme, authority and the rest (path, query, fragment).
pub(crate) fn absolute_parts(target: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let colon = memchr(b':', target)?;
    let scheme = &target[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return None;
    }
    let after = target[colon + 1..].strip_prefix(b"//")?;
    let end = after
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

/// The authority (`host[:port]`) of an absolute-form target, `None` for other forms.
/// RFC 9112 §3.2.2: it replaces the `Host` field.
pub fn target_authority(target: &[u8]) -> Option<&[u8]> {
    absolute_parts(target).map(|(_, authority, _)| authority)
}

/// Split a target into raw `(path, query)`: absolute-form's scheme and authority are
/// removed (an empty path becomes `/`), the fragment is removed, the query is given without
/// its `?`.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    let (rest, absolute) = match absolute_parts(target) {
        Some((_, _, rest)) => (rest, true),
        None => (target, false),
    };
    let end = memchr2(b'?', b'#', rest).unwrap_or(rest.len());
    let path = match &rest[..end] {
        b"" if absolute => b"/",
        path => path,
    };
    let query = match rest.get(end) {
        Some(b'?') => {
            let q = &rest[end + 1..];
            &q[..memchr(b'#', q).unwrap_or(q.len())]
        }
        _ => b"",
    };
    (path, query)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `path` into `out` (cleared first). Invalid escapes (`%` not followed by two
/// hex digits) are kept literally; `+` is not a space in a path.
pub fn percent_decode(path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(path.len());
    let mut rest = path;
    while let Some(i) = memchr(b'%', rest) {
        out.extend_from_slice(&rest[..i]);
        let escape = rest.get(i + 1..i + 3).and_then(|h| match *h {
            [a, b] => Some(hex_value(a)? << 4 | hex_value(b)?),
            _ => None,
        });
        match escape {
            Some(byte) => {
                out.push(byte);
                rest = &rest[i + 3..];
            }
            None => {
                out.push(b'%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
}
