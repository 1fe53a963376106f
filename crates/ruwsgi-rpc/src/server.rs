//! Answering a call packet (modifier1 173) from this process's [`Registry`].
//!
//! [`answer`] is the whole server side minus the I/O: it decodes the packet, runs the
//! function and builds the bytes to write. The worker reads the packet, writes the answer
//! and keeps or closes the connection as the answer says.
//!
//! What each mode answers:
//!
//! | | result | no result (unknown function, empty result, failed function) |
//! |---|---|---|
//! | standard (0) | `(173, len, 0)` + result, or the large form; connection kept | `(173, 0, 0)`; connection kept |
//! | raw (1, others) | the result bytes; close | nothing; close |
//! | HTTP bridge (2) | `200 OK` + result; close | `404 Not Found` (`500` without a function name); close |
//!
//! A uWSGI node closes the connection without a word when there is no result; callers of
//! either kind read both as "no result", and the empty reply keeps the connection usable.
//! A packet that cannot be decoded gets no answer and the connection is closed.

use std::fmt::Display;

use ruwsgi_proto::rpc::{self, Call, Mode};
pub use ruwsgi_proto::uwsgi::Answer;
use ruwsgi_proto::uwsgi::{self, PacketHeader};
use ruwsgi_proto::Vars;
use ruwsgi_sys::log_line;

use crate::{Registry, Reply};

/// Answer one call packet (`header` and its `body`). `peer` names the caller in log lines;
/// `vars` is scratch space for the HTTP bridge's vars block.
pub fn answer(
    registry: &Registry,
    header: PacketHeader,
    body: &[u8],
    peer: &dyn Display,
    vars: &mut Vars,
) -> Answer {
    let mode = rpc::Mode::from_modifier2(header.modifier2);
    if mode == Mode::Http {
        return http_bridge(registry, body, peer, vars);
    }
    let call = match rpc::parse_call(body) {
        Ok(c) => c,
        Err(e) => {
            log_line(&format!(
                "ruwsgi: invalid RPC packet from {peer}: {e}; closing"
            ));
            return Answer::close_silently();
        }
    };
    let result = run(registry, &call, peer);
    match (mode, result) {
        (Mode::Standard, result) => {
            let result = result.unwrap_or_default();
            let mut head = Vec::with_capacity(32);
            rpc::encode_reply_head(result.len(), &mut head);
            Answer {
                head,
                body: result,
                close: false,
            }
        }
        (_, Some(result)) => Answer {
            head: Vec::new(),
            body: result,
            close: true,
        },
        (_, None) => Answer::close_silently(),
    }
}

/// Run the call; `None` when there is no result (logged when that is an error).
fn run(registry: &Registry, call: &Call<'_>, peer: &dyn Display) -> Option<Vec<u8>> {
    match registry.call(call.name, &call.args) {
        Reply::Result(r) => Some(r),
        Reply::NoResult => None,
        Reply::NotFound => {
            log_line(&format!(
                "ruwsgi: RPC function '{}' not found (called by {peer})",
                String::from_utf8_lossy(call.name)
            ));
            None
        }
        Reply::Failed(why) => {
            log_line(&format!(
                "ruwsgi: RPC function '{}' failed: {why}",
                String::from_utf8_lossy(call.name)
            ));
            None
        }
    }
}

fn http_bridge(registry: &Registry, body: &[u8], peer: &dyn Display, vars: &mut Vars) -> Answer {
    let limits = uwsgi::Limits {
        buffer_size: uwsgi::MAX_DATASIZE,
        max_vars: 1024,
    };
    if let Err(e) = uwsgi::parse_vars(body, &limits, vars) {
        log_line(&format!(
            "ruwsgi: invalid RPC (HTTP) packet from {peer}: {e}; closing"
        ));
        return Answer::close_silently();
    }
    let protocol = rpc::http_protocol(vars.get(b"SERVER_PROTOCOL"));
    let path = vars.get(b"PATH_INFO").unwrap_or_default();
    let call = match rpc::parse_http_path(path) {
        Ok(Some(call)) => call,
        Ok(None) => {
            return http_error(
                protocol,
                "500 Internal Server Error",
                "no RPC function named",
            )
        }
        Err(e) => {
            log_line(&format!("ruwsgi: invalid RPC (HTTP) path from {peer}: {e}"));
            return http_error(protocol, "500 Internal Server Error", "invalid RPC call");
        }
    };
    match run(registry, &call, peer) {
        Some(result) => {
            let mut head = Vec::with_capacity(96);
            let content_type = rpc::http_content_type(vars.get(b"HTTP_ACCEPT"));
            rpc::encode_http_head(protocol, "200 OK", content_type, result.len(), &mut head);
            Answer {
                head,
                body: result,
                close: true,
            }
        }
        None => http_error(protocol, "404 Not Found", "no result"),
    }
}

fn http_error(protocol: &[u8], status: &str, text: &str) -> Answer {
    let mut head = Vec::with_capacity(96);
    rpc::encode_http_head(protocol, status, b"text/plain", text.len(), &mut head);
    Answer {
        head,
        body: text.as_bytes().to_vec(),
        close: true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::RpcFunction;

    fn registry() -> Registry {
        let r = Registry::new(8);
        let hello: Arc<dyn RpcFunction> =
            Arc::new(|args: &[&[u8]]| Ok(Some([&b"hello "[..], &args.join(&b" "[..])].concat())));
        r.register(b"hello", 0, hello).unwrap();
        r.register(
            b"big",
            0,
            Arc::new(|_: &[&[u8]]| Ok(Some(vec![b'x'; 70000]))),
        )
        .unwrap();
        r.register(b"empty", 0, Arc::new(|_: &[&[u8]]| Ok(Some(Vec::new()))))
            .unwrap();
        r.register(b"bad", 0, Arc::new(|_: &[&[u8]]| Err("no".into())))
            .unwrap();
        r
    }

    fn call(r: &Registry, modifier2: u8, name: &[u8], args: &[&[u8]]) -> Answer {
        let mut packet = Vec::new();
        rpc::encode_call(name, args, &mut packet).unwrap();
        let header = PacketHeader {
            modifier2,
            ..uwsgi::parse_header(&packet).unwrap()
        };
        answer(r, header, &packet[4..], &"test", &mut Vars::new())
    }

    #[test]
    fn standard_replies() {
        let r = registry();
        let a = call(&r, 0, b"hello", &[b"a", b"b"]);
        assert_eq!(a.head, [173, 9, 0, 0]);
        assert_eq!(a.body, b"hello a b");
        assert!(!a.close);
        let a = call(&r, 0, b"big", &[]);
        assert_eq!(a.head[0], 173);
        assert_eq!(a.head[3], rpc::LARGE_REPLY);
        assert_eq!(rpc::large_reply_length(&a.head[4..]), Ok(70000));
        assert_eq!(a.body.len(), 70000);
        for name in [&b"empty"[..], b"bad", b"missing"] {
            let a = call(&r, 0, name, &[]);
            assert_eq!(
                (a.head, a.body, a.close),
                (vec![173, 0, 0, 0], vec![], false)
            );
        }
    }

    #[test]
    fn raw_replies() {
        let r = registry();
        for m in [1, 3, 4, 9] {
            let a = call(&r, m, b"hello", &[b"w"]);
            assert_eq!(
                (a.head.len(), a.body, a.close),
                (0, b"hello w".to_vec(), true)
            );
            assert_eq!(call(&r, m, b"missing", &[]), Answer::close_silently());
        }
    }

    #[test]
    fn malformed_packets_close() {
        let r = registry();
        let header = PacketHeader {
            modifier1: 173,
            datasize: 3,
            modifier2: 0,
        };
        assert_eq!(
            answer(&r, header, &[9, 0, b'a'], &"t", &mut Vars::new()),
            Answer::close_silently()
        );
        assert_eq!(
            answer(&r, header, &[], &"t", &mut Vars::new()),
            Answer::close_silently()
        );
    }

    fn http(r: &Registry, path: &[u8], accept: Option<&[u8]>) -> Answer {
        let mut v = Vars::new();
        v.push(b"REQUEST_METHOD", b"GET");
        if accept.is_some() {
            v.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
        }
        v.push(b"PATH_INFO", path);
        if let Some(a) = accept {
            v.push(b"HTTP_ACCEPT", a);
        }
        let mut body = Vec::new();
        uwsgi::encode_vars(&v, &mut body).unwrap();
        let header = PacketHeader {
            modifier1: 173,
            datasize: body.len() as u16,
            modifier2: 2,
        };
        answer(r, header, &body, &"t", &mut Vars::new())
    }

    #[test]
    fn http_bridge_replies() {
        let r = registry();
        let a = http(&r, b"/hello/x/y", Some(b"text/plain"));
        assert_eq!(
            a.head,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
        );
        assert_eq!(a.body, b"hello x y");
        assert!(a.close);
        let a = http(&r, b"/hello", Some(b"*/*"));
        assert!(a.head.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(String::from_utf8_lossy(&a.head).contains("application/binary"));
        assert!(http(&r, b"/missing", None)
            .head
            .starts_with(b"HTTP/1.0 404"));
        assert!(http(&r, b"/empty", None).head.starts_with(b"HTTP/1.0 404"));
        assert!(http(&r, b"/", None).head.starts_with(b"HTTP/1.0 500"));
        assert!(http(&r, b"", None).head.starts_with(b"HTTP/1.0 500"));
    }
}
