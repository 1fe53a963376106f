//! Turning a parsed HTTP head or uwsgi packet into the CGI variables a plugin sees.
//!
//! Both protocols end in the same [`Vars`] list. HTTP heads are translated (the target split
//! into `REQUEST_URI`, `PATH_INFO` (percent-decoded) and `QUERY_STRING`, headers into
//! `HTTP_*`, repeated headers joined). uwsgi packets already carry CGI variables; what a peer
//! may claim about the client (`REMOTE_ADDR`, `HTTPS`, ...) is only believed from trusted
//! peers: unix sockets, loopback and `uwsgi-trusted-peers`.

use ruwsgi_proto::http::{percent_decode, split_target, Head, HeaderSpan, Version};
use ruwsgi_proto::Vars;

use crate::stream::{ListenSocket, PeerText};

/// Variables a peer may only set when trusted; otherwise they are dropped and the real
/// values are used.
const IDENTITY_VARS: [&[u8]; 5] = [
    b"REMOTE_ADDR",
    b"REMOTE_USER",
    b"HTTPS",
    b"UWSGI_SCHEME",
    b"DOCUMENT_ROOT",
];

/// Variables that ask for dynamic app loading or process changes; never acted upon.
pub const DYNAMIC_VARS: [&[u8]; 8] = [
    b"UWSGI_FILE",
    b"UWSGI_SCRIPT",
    b"UWSGI_MODULE",
    b"UWSGI_CALLABLE",
    b"UWSGI_HOME",
    b"UWSGI_PYHOME",
    b"UWSGI_CHDIR",
    b"UWSGI_SETENV",
];

fn span(buf: &[u8], s: (u32, u32)) -> &[u8] {
    &buf[s.0 as usize..s.1 as usize]
}

/// Fill `vars` from an HTTP head parsed out of `buf`.
#[allow(clippy::too_many_arguments)]
pub fn http_vars(
    buf: &[u8],
    head: &Head,
    headers: &[HeaderSpan],
    listen: &ListenSocket,
    peer: &PeerText,
    vars: &mut Vars,
    scratch: &mut Vec<u8>,
) {
    vars.clear();
    let method = span(buf, head.method);
    let target = span(buf, head.target);
    let (path, query) = split_target(target);
    vars.push(b"REQUEST_METHOD", method);
    // For absolute-form targets the environ carries only the path and query.
    let uri_start = path.as_ptr() as usize - target.as_ptr() as usize;
    let uri = &target[uri_start.min(target.len())..];
    let uri = match memchr::memchr(b'#', uri) {
        Some(i) => &uri[..i],
        None => uri,
    };
    vars.push(b"REQUEST_URI", uri);
    percent_decode(path, scratch);
    vars.push(b"PATH_INFO", scratch);
    vars.push(b"QUERY_STRING", query);
    vars.push(
        b"SERVER_PROTOCOL",
        match head.version {
            Version::Http11 => b"HTTP/1.1",
            Version::Http10 => b"HTTP/1.0",
        },
    );
    vars.push(b"SCRIPT_NAME", b"");
    match head.host.map(|h| span(buf, h)) {
        Some(host) if !host.is_empty() => {
            let (name, port) = split_host_port(host);
            vars.push(b"SERVER_NAME", name);
            vars.push(
                b"SERVER_PORT",
                if port.is_empty() {
                    listen.server_port.as_bytes()
                } else {
                    port
                },
            );
        }
        _ => {
            vars.push(b"SERVER_NAME", listen.server_name.as_bytes());
            vars.push(b"SERVER_PORT", listen.server_port.as_bytes());
        }
    }
    vars.push(b"REMOTE_ADDR", peer.addr.as_bytes());
    vars.push(b"REMOTE_PORT", peer.port.as_bytes());
    push_headers(buf, headers, vars, scratch);
}

/// Add headers as `HTTP_*` (and `CONTENT_TYPE`/`CONTENT_LENGTH`), joining repeated fields
/// with `, ` (`; ` for Cookie), as one environ key can hold only one value.
fn push_headers(buf: &[u8], headers: &[HeaderSpan], vars: &mut Vars, scratch: &mut Vec<u8>) {
    for (i, h) in headers.iter().enumerate() {
        let name = span(buf, h.name);
        let seen_before = headers[..i]
            .iter()
            .any(|p| span(buf, p.name).eq_ignore_ascii_case(name));
        if seen_before {
            continue;
        }
        let later = headers[i + 1..]
            .iter()
            .filter(|p| span(buf, p.name).eq_ignore_ascii_case(name));
        let mut later = later.peekable();
        if later.peek().is_none() {
            vars.push_http_header(name, span(buf, h.value));
            continue;
        }
        let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b", "
        };
        scratch.clear();
        scratch.extend_from_slice(span(buf, h.value));
        for p in later {
            scratch.extend_from_slice(sep);
            scratch.extend_from_slice(span(buf, p.value));
        }
        vars.push_http_header(name, scratch);
    }
}

/// Split `host[:port]` or `[v6]:port`.
fn split_host_port(host: &[u8]) -> (&[u8], &[u8]) {
    if host.first() == Some(&b'[') {
        if let Some(end) = memchr::memchr(b']', host) {
            let rest = &host[end + 1..];
            let port = rest.strip_prefix(b":").unwrap_or(b"");
            return (&host[..=end], port);
        }
        return (host, b"");
    }
    match memchr::memrchr(b':', host) {
        Some(i) => (&host[..i], &host[i + 1..]),
        None => (host, b""),
    }
}

/// What the uwsgi vars say about the request, after trust filtering.
#[derive(Debug, Clone, Copy)]
pub struct UwsgiMeta {
    /// `CONTENT_LENGTH`, if present and valid.
    pub content_length: Option<u64>,
    /// The response status line says HTTP/1.1.
    pub http11: bool,
    /// `https` when the peer says so (trusted peers only).
    pub https: bool,
    /// HEAD request.
    pub head_only: bool,
    /// The peer sent dynamic-app vars (ignored; logged once per connection).
    pub dynamic_vars: bool,
    /// `CONTENT_LENGTH` was present but not a number.
    pub bad_length: bool,
}

/// Apply the trust rules to vars received from a uwsgi peer and fill in what PEP 3333
/// requires but a peer may omit.
pub fn sanitize_uwsgi_vars(vars: &mut Vars, peer: &PeerText, trusted: bool) -> UwsgiMeta {
    if !trusted {
        for key in IDENTITY_VARS {
            vars.remove(key);
        }
        vars.push(b"REMOTE_ADDR", peer.addr.as_bytes());
        vars.remove(b"REMOTE_PORT");
        vars.push(b"REMOTE_PORT", peer.port.as_bytes());
    }
    for (key, default) in [
        (&b"SCRIPT_NAME"[..], &b""[..]),
        (b"PATH_INFO", b""),
        (b"QUERY_STRING", b""),
        (b"REQUEST_METHOD", b"GET"),
        (b"SERVER_PROTOCOL", b"HTTP/1.0"),
        (b"SERVER_NAME", b"localhost"),
        (b"SERVER_PORT", b"80"),
    ] {
        if !vars.contains(key) {
            vars.push(key, default);
        }
    }
    let (content_length, bad_length) = match vars.get(b"CONTENT_LENGTH") {
        None | Some(b"") => (None, false),
        Some(v) => match parse_u64(v) {
            Some(n) => (Some(n), false),
            None => (None, true),
        },
    };
    let https = trusted
        && (matches!(vars.get(b"HTTPS"), Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1")
            || matches!(vars.get(b"UWSGI_SCHEME"), Some(b"https"))
            || matches!(vars.get(b"REQUEST_SCHEME"), Some(b"https"))
            || matches!(vars.get(b"HTTP_X_FORWARDED_PROTO"), Some(b"https")));
    UwsgiMeta {
        content_length,
        http11: vars.get(b"SERVER_PROTOCOL") == Some(b"HTTP/1.1"),
        https,
        head_only: vars.get(b"REQUEST_METHOD") == Some(b"HEAD"),
        dynamic_vars: DYNAMIC_VARS.iter().any(|k| vars.contains(k)),
        bad_length,
    }
}

/// A decimal length (`1*DIGIT`, no sign, no overflow).
pub(crate) fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Peer;
    use std::net::SocketAddr;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port(b"example.com:8080"),
            (&b"example.com"[..], &b"8080"[..])
        );
        assert_eq!(
            split_host_port(b"example.com"),
            (&b"example.com"[..], &b""[..])
        );
        assert_eq!(split_host_port(b"[::1]:80"), (&b"[::1]"[..], &b"80"[..]));
    }

    #[test]
    fn untrusted_peer_cannot_claim_identity() {
        let mut v = Vars::new();
        v.push(b"REMOTE_ADDR", b"1.2.3.4");
        v.push(b"HTTPS", b"on");
        v.push(b"REQUEST_METHOD", b"GET");
        let peer = Peer::Tcp("10.0.0.7:5555".parse::<SocketAddr>().unwrap());
        let meta = sanitize_uwsgi_vars(&mut v, &peer.text(), false);
        assert_eq!(v.get(b"REMOTE_ADDR"), Some(&b"10.0.0.7"[..]));
        assert!(!v.contains(b"HTTPS"));
        assert!(!meta.https);
        assert_eq!(v.get(b"SCRIPT_NAME"), Some(&b""[..]));
    }

    #[test]
    fn trusted_peer_keeps_identity() {
        let mut v = Vars::new();
        v.push(b"REMOTE_ADDR", b"1.2.3.4");
        v.push(b"HTTPS", b"on");
        v.push(b"CONTENT_LENGTH", b"12");
        let meta = sanitize_uwsgi_vars(&mut v, &Peer::Unix.text(), true);
        assert_eq!(v.get(b"REMOTE_ADDR"), Some(&b"1.2.3.4"[..]));
        assert!(meta.https);
        assert_eq!(meta.content_length, Some(12));
    }
}
