//! The client against small scripted nodes on loopback.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use ruwsgi_node::NodeError;

use super::*;

/// Read one call packet: `(name, args)`, or `None` at end of stream.
fn read_call(s: &mut impl Read) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[0], 173);
    let mut body = vec![0u8; u16::from_le_bytes([h[1], h[2]]) as usize];
    s.read_exact(&mut body).ok()?;
    let call = rpc::parse_call(&body).unwrap();
    Some((
        call.name.to_vec(),
        call.args.iter().map(|a| a.to_vec()).collect(),
    ))
}

fn reply(s: &mut impl Write, result: &[u8]) {
    let mut out = Vec::new();
    rpc::encode_reply_head(result.len(), &mut out);
    out.extend_from_slice(result);
    s.write_all(&out).unwrap();
}

/// A TCP node: `serve(stream, connection number)` runs for each connection, on its own
/// thread. Returns the address and the number of connections accepted so far.
fn node<F>(serve: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(std::net::TcpStream, usize) + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let serve = Arc::new(serve);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let serve = serve.clone();
            thread::spawn(move || serve(s, n));
        }
    });
    (addr, accepted)
}

/// Answers `echo` with its arguments joined by spaces, on a kept connection.
fn persistent(mut s: std::net::TcpStream, _: usize) {
    while let Some((name, args)) = read_call(&mut s) {
        match &name[..] {
            b"echo" => reply(&mut s, &args.join(&b' ')),
            b"big" => reply(&mut s, &vec![b'z'; 200_000]),
            _ => reply(&mut s, b""),
        }
    }
}

#[test]
fn calls_reuse_one_connection() {
    let (addr, accepted) = node(persistent);
    let c = Client::new(Duration::from_secs(2));
    for i in 0..20 {
        let arg = format!("a{i}");
        let r = c.call(&addr, b"echo", &[arg.as_bytes(), b"b"]).unwrap();
        assert_eq!(r, Some(format!("a{i} b").into_bytes()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(c.call(&addr, b"other", &[]).unwrap(), None);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn large_replies() {
    let (addr, _) = node(persistent);
    let c = Client::new(Duration::from_secs(2));
    for _ in 0..3 {
        let r = c.call(&addr, b"big", &[]).unwrap().unwrap();
        assert_eq!(r.len(), 200_000);
        assert!(r.iter().all(|&b| b == b'z'));
    }
}

#[test]
fn a_node_that_closes_after_each_reply() {
    let (addr, accepted) = node(|mut s, _| {
        if let Some((_, args)) = read_call(&mut s) {
            reply(&mut s, &args.concat());
        }
    });
    let c = Client::new(Duration::from_secs(2));
    for i in 0..50 {
        let arg = i.to_string();
        assert_eq!(
            c.call(&addr, b"f", &[arg.as_bytes()]).unwrap(),
            Some(arg.into_bytes())
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 50);
}

#[test]
fn a_kept_connection_closed_in_flight_is_retried_once() {
    // The first connection answers one call, then reads the next and closes without
    // answering (as a node going away does); later connections answer normally.
    let (addr, accepted) = node(|mut s, n| {
        while let Some((_, args)) = read_call(&mut s) {
            reply(&mut s, &args.concat());
            if n == 0 {
                let _ = read_call(&mut s);
                return;
            }
        }
    });
    let c = Client::new(Duration::from_secs(2));
    assert_eq!(c.call(&addr, b"f", &[b"1"]).unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.call(&addr, b"f", &[b"2"]).unwrap(), Some(b"2".to_vec()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn a_fresh_connection_is_never_retried() {
    let (addr, accepted) = node(|mut s, _| {
        let _ = read_call(&mut s);
    });
    let c = Client::new(Duration::from_secs(2));
    assert!(matches!(
        c.call(&addr, b"f", &[]),
        Err(CallError::Node(NodeError::Io { .. }))
    ));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn dead_and_slow_nodes_fail_within_the_timeout() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::new(Duration::from_millis(300));
    let t = Instant::now();
    assert!(matches!(
        c.call(&format!("127.0.0.1:{port}"), b"f", &[]),
        Err(CallError::Node(NodeError::Connect { .. }))
    ));
    assert!(t.elapsed() < Duration::from_secs(1));

    let (addr, _) = node(|mut s, _| {
        let _ = read_call(&mut s);
        thread::sleep(Duration::from_secs(3));
    });
    let t = Instant::now();
    assert!(matches!(
        c.call(&addr, b"f", &[]),
        Err(CallError::Node(NodeError::Timeout(_)))
    ));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(1),
        "{took:?}"
    );

    // A node that dribbles a large reply one byte at a time is cut off at the deadline.
    let (addr, _) = node(|mut s, _| {
        let _ = read_call(&mut s);
        let mut head = Vec::new();
        rpc::encode_reply_head(100, &mut head);
        let _ = s.write_all(&head);
        for _ in 0..100 {
            thread::sleep(Duration::from_millis(50));
            if s.write_all(b"x").is_err() {
                return;
            }
        }
    });
    let t = Instant::now();
    assert!(c.call(&addr, b"f", &[]).is_err());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn misbehaving_nodes() {
    let c = Client::new(Duration::from_secs(2));
    let (addr, _) = node(|mut s, _| {
        let _ = read_call(&mut s);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    assert!(matches!(
        c.call(&addr, b"f", &[]),
        Err(CallError::Reply { .. })
    ));
    let (addr, _) = node(|mut s, _| {
        let _ = read_call(&mut s);
        // A large reply claiming 10 GiB.
        let mut dict = Vec::new();
        for item in [&b"CONTENT_LENGTH"[..], b"10737418240"] {
            dict.extend_from_slice(&(item.len() as u16).to_le_bytes());
            dict.extend_from_slice(item);
        }
        let mut head = vec![173, dict.len() as u8, 0, rpc::LARGE_REPLY];
        head.extend_from_slice(&dict);
        let _ = s.write_all(&head);
        thread::sleep(Duration::from_millis(500));
    });
    assert!(matches!(
        c.call(&addr, b"f", &[]),
        Err(CallError::TooLarge { .. })
    ));
}

#[test]
fn unix_socket_nodes() {
    let dir = std::env::temp_dir().join(format!("ruwsgi-rpc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.sock");
    let _ = std::fs::remove_file(&path);
    let l = UnixListener::bind(&path).unwrap();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                while let Some((_, args)) = read_call(&mut s) {
                    reply(&mut s, &args.concat());
                }
            });
        }
    });
    let c = Client::new(Duration::from_secs(2));
    let node = path.to_str().unwrap();
    for i in 0..5 {
        let arg = i.to_string();
        assert_eq!(
            c.call(node, b"f", &[arg.as_bytes()]).unwrap(),
            Some(arg.into_bytes())
        );
    }
    let missing = dir.join("missing.sock");
    assert!(matches!(
        c.call(missing.to_str().unwrap(), b"f", &[]),
        Err(CallError::Node(NodeError::Connect { .. }))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unencodable_calls_fail_before_connecting() {
    let c = Client::new(Duration::from_secs(1));
    assert!(matches!(
        c.call("127.0.0.1:1", b"", &[]),
        Err(CallError::Encode(_))
    ));
}
