//! The client against scripted nodes on loopback: a ruwsgi-like node (the real
//! [`crate::server::answer`] over an in-test backend, connection kept) and a uWSGI-like one
//! (the same answers, but failures are a silent close and every connection closes after
//! one reply), plus dead, slow and misbehaving ones.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use ruwsgi_proto::uwsgi;
use ruwsgi_proto::Vars;

use ruwsgi_node::NodeError;

use super::*;
use crate::server::tests::MapBackend;
use crate::server::{answer, request_len};

/// Read one request packet (header + body + value); `None` at end of stream.
fn read_request(s: &mut impl Read) -> Option<(uwsgi::PacketHeader, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).ok()?;
    let header = uwsgi::parse_header(&h).unwrap();
    let mut body = vec![0u8; header.datasize as usize];
    s.read_exact(&mut body).ok()?;
    let need = request_len(header, &body, 1 << 20)?;
    let have = body.len();
    body.resize(need, 0);
    s.read_exact(&mut body[have..]).ok()?;
    Some((header, body))
}

/// Serve `backend` on a TCP listener; `uwsgi_like` as described above. Returns the address
/// and the number of connections accepted so far.
fn node(backend: Arc<MapBackend>, uwsgi_like: bool) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let backend = backend.clone();
            thread::spawn(move || serve(&backend, &mut s, uwsgi_like));
        }
    });
    (addr, accepted)
}

fn serve(backend: &MapBackend, s: &mut (impl Read + Write), uwsgi_like: bool) {
    while let Some((header, body)) = read_request(s) {
        let a = answer(backend, header, &body, &"test", &mut Vars::new());
        let refused =
            a.head.len() >= 4 && !cache::parse_magic_reply(&a.head[4..]).is_ok_and(|r| r.ok);
        if uwsgi_like && refused {
            return;
        }
        let mut out = a.head;
        out.extend_from_slice(&a.body);
        if s.write_all(&out).is_err() || a.close || uwsgi_like {
            return;
        }
    }
}

fn client() -> CacheClient {
    CacheClient::new(Duration::from_secs(2))
}

fn operations(c: &CacheClient, addr: &str, cache: &str) {
    assert!(c.set(addr, cache, b"k", b"v1", 0).unwrap());
    assert!(
        !c.set(addr, cache, b"k", b"v2", 0).unwrap(),
        "set never overwrites"
    );
    let item = c.get(addr, cache, b"k").unwrap().unwrap();
    assert_eq!((item.value, item.expires_at), (b"v1".to_vec(), 0));
    assert!(c.update(addr, cache, b"k", b"v3", 100).unwrap());
    let item = c.get(addr, cache, b"k").unwrap().unwrap();
    assert_eq!(item.value, b"v3");
    assert!(item.expires_at > 1_700_000_000);
    assert!(c.exists(addr, cache, b"k").unwrap());
    assert!(c.del(addr, cache, b"k").unwrap());
    assert!(!c.del(addr, cache, b"k").unwrap());
    assert!(!c.exists(addr, cache, b"k").unwrap());
    assert_eq!(c.get(addr, cache, b"k").unwrap(), None);
    assert!(c.set(addr, cache, b"a", b"1", 0).unwrap());
    assert!(c.clear(addr, cache).unwrap());
    assert_eq!(c.get(addr, cache, b"a").unwrap(), None);
    assert!(c.math(addr, cache, b"n", 5, 0).unwrap());
    assert_eq!(
        c.get(addr, cache, b"n").unwrap().unwrap().value,
        5i64.to_ne_bytes()
    );
    // unknown cache
    assert_eq!(c.get(addr, "nope", b"n").unwrap(), None);
    assert!(!c.set(addr, "nope", b"n", b"x", 0).unwrap());
    assert!(!c.clear(addr, "nope").unwrap());
}

#[test]
fn identifiers() {
    assert_eq!(parse_identifier(None), Target::Local(None));
    assert_eq!(parse_identifier(Some("")), Target::Local(None));
    assert_eq!(parse_identifier(Some("c")), Target::Local(Some("c")));
    assert_eq!(
        parse_identifier(Some("c@127.0.0.1:3031")),
        Target::Remote {
            cache: "c",
            node: "127.0.0.1:3031"
        }
    );
    assert_eq!(
        parse_identifier(Some("@:3031")),
        Target::Remote {
            cache: "",
            node: ":3031"
        }
    );
    assert_eq!(
        parse_identifier(Some("c@/run/n.sock")),
        Target::Remote {
            cache: "c",
            node: "/run/n.sock"
        }
    );
    assert_eq!(
        parse_identifier(Some("c@@abstract")),
        Target::Remote {
            cache: "c",
            node: "@abstract"
        }
    );
}

#[test]
fn against_a_ruwsgi_like_node_one_connection_serves_everything() {
    let b = Arc::new(MapBackend::new(&["", "other"], 1000));
    let (addr, accepted) = node(b.clone(), false);
    let c = client();
    operations(&c, &addr, "");
    operations(&c, &addr, "other");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "misses keep the connection too"
    );
    // the default cache of the node is the one with the empty name
    assert!(c.update(&addr, "", b"d", b"x", 0).unwrap());
    assert!(crate::CacheBackend::exists(&*b, None, b"d").unwrap());
}

#[test]
fn against_a_uwsgi_like_node_every_operation_connects() {
    let b = Arc::new(MapBackend::new(&["", "other"], 1000));
    let (addr, accepted) = node(b, true);
    let c = client();
    operations(&c, &addr, "other");
    let after = accepted.load(Ordering::SeqCst);
    // one connection per operation (18), plus the one attempt on a kept connection that
    // revealed the node closes after each reply
    assert!((18..=19).contains(&after), "{after}");
    for _ in 0..10 {
        assert!(c.exists(&addr, "other", b"n").unwrap());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), after + 10);
}

#[test]
fn values_of_every_size() {
    let b = Arc::new(MapBackend::new(&[""], 1 << 20));
    let (addr, _) = node(b, false);
    let c = client();
    for size in [1usize, 100, 65535, 65536, 300_000, 1 << 20] {
        let v: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let key = format!("k{size}");
        assert!(
            c.update(&addr, "", key.as_bytes(), &v, 0).unwrap(),
            "{size}"
        );
        assert_eq!(c.get(&addr, "", key.as_bytes()).unwrap().unwrap().value, v);
    }
    // too large for the node: refused before the value is read, connection closed
    let v = vec![1u8; (1 << 20) + 1];
    assert!(!c.update(&addr, "", b"big", &v, 0).unwrap());
    assert!(c.exists(&addr, "", b"k1").unwrap());
}

#[test]
fn a_node_closing_on_purpose_keeps_its_connections_reused() {
    let b = Arc::new(MapBackend::new(&[""], 10));
    let (addr, accepted) = node(b, false);
    let c = client();
    assert!(c.update(&addr, "", b"k", b"1", 0).unwrap());
    // too large for the backend: a status=fail reply on the kept connection
    assert!(!c.update(&addr, "", b"k", &[0u8; 11], 0).unwrap());
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // too large to be read at all: the node closes the kept connection, then the fresh one
    assert!(!c
        .update(&addr, "", b"k", &vec![0u8; (1 << 20) + 1], 0)
        .unwrap());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    for _ in 0..10 {
        assert!(c.exists(&addr, "", b"k").unwrap());
    }
    // one more connection, kept and reused: the node was not taken for one that closes
    // after every reply
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn unix_socket_nodes() {
    let dir = std::env::temp_dir().join(format!("ruwsgi-cache-client-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("n.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    let b = Arc::new(MapBackend::new(&[""], 100));
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let b = b.clone();
            thread::spawn(move || serve(&b, &mut s, false));
        }
    });
    let c = client();
    let node = path.to_str().unwrap();
    operations(&c, node, "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn encode_errors_and_bad_nodes() {
    let c = client();
    assert!(matches!(
        c.get("127.0.0.1:1", "", b""),
        Err(ClientError::Encode(_))
    ));
    assert!(matches!(
        c.set("127.0.0.1:1", "", b"k", b"", 0),
        Err(ClientError::Encode(_))
    ));
    for bad in ["", "host:", "host:port", "127.0.0.1:99999"] {
        assert!(
            matches!(
                c.get(bad, "", b"k"),
                Err(ClientError::Node(NodeError::BadNode(_)))
            ),
            "{bad}"
        );
    }
}

fn scripted<F>(serve: F) -> String
where
    F: Fn(std::net::TcpStream) + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let serve = serve.clone();
            thread::spawn(move || serve(s));
        }
    });
    addr
}

#[test]
fn dead_and_slow_nodes_fail_within_the_timeout() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = CacheClient::new(Duration::from_millis(300));
    let t = Instant::now();
    assert!(matches!(
        c.get(&format!("127.0.0.1:{port}"), "", b"k"),
        Err(ClientError::Node(NodeError::Connect { .. }))
    ));
    assert!(t.elapsed() < Duration::from_secs(1));

    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        thread::sleep(Duration::from_secs(3));
    });
    let t = Instant::now();
    assert!(matches!(
        c.get(&addr, "", b"k"),
        Err(ClientError::Node(NodeError::Timeout(_)))
    ));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(1),
        "{took:?}"
    );

    // a value dribbled one byte at a time is cut off at the deadline
    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        let mut head = Vec::new();
        cache::encode_ok_reply(Some((100, 0)), &mut head);
        let _ = s.write_all(&head);
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(50));
            if s.write_all(b"x").is_err() {
                return;
            }
        }
    });
    let t = Instant::now();
    assert!(c.get(&addr, "", b"k").is_err());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn misbehaving_nodes() {
    let c = client();
    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    assert!(matches!(
        c.get(&addr, "", b"k"),
        Err(ClientError::Reply { .. })
    ));
    // a reply cut short after its header
    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        let mut head = Vec::new();
        cache::encode_ok_reply(Some((10, 0)), &mut head);
        let _ = s.write_all(&head[..6]);
    });
    assert!(matches!(
        c.get(&addr, "", b"k"),
        Err(ClientError::Node(NodeError::Io { .. }))
    ));
    // an announced value over the limit
    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        let mut head = Vec::new();
        cache::encode_ok_reply(Some(((MAX_VALUE + 1) as usize, 0)), &mut head);
        let _ = s.write_all(&head);
    });
    assert!(matches!(
        c.get(&addr, "", b"k"),
        Err(ClientError::TooLarge { .. })
    ));
    // a get hit with size 0 is a miss
    let addr = scripted(|mut s| {
        let _ = read_request(&mut s);
        let mut head = Vec::new();
        cache::encode_ok_reply(Some((0, 0)), &mut head);
        let _ = s.write_all(&head);
    });
    assert_eq!(c.get(&addr, "", b"k").unwrap(), None);
}

#[test]
fn a_kept_connection_closed_in_flight_is_retried_once() {
    // The first connection answers one request, then reads the next and closes without
    // answering; later connections answer normally.
    let b = Arc::new(MapBackend::new(&[""], 100));
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let addr = scripted(move |mut s| {
        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
        if first {
            if let Some((h, body)) = read_request(&mut s) {
                let a = answer(&*b, h, &body, &"t", &mut Vars::new());
                let _ = s.write_all(&[a.head, a.body].concat());
            }
            let _ = read_request(&mut s);
            return;
        }
        serve(&b, &mut s, false);
    });
    let c = client();
    assert!(c.update(&addr, "", b"k", b"1", 0).unwrap());
    assert_eq!(c.get(&addr, "", b"k").unwrap().unwrap().value, b"1");
    assert_eq!(n.load(Ordering::SeqCst), 2);
}
