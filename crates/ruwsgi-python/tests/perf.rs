//! Hot-path cost of a hello-world request (ignored by default; run in release):
//! `cargo test --release -p ruwsgi-python --test tests perf -- --ignored --nocapture`.

use std::time::Instant;

use crate::util::*;

#[test]
#[ignore]
fn perf_hello_world() {
    let app = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello World']
"#;
    let v = vars(&[
        ("HTTP_USER_AGENT", b"wrk/4.2"),
        ("HTTP_ACCEPT", b"*/*"),
        ("HTTP_ACCEPT_ENCODING", b"gzip"),
        ("HTTP_CONNECTION", b"keep-alive"),
        ("SCRIPT_NAME", b""),
        ("CONTENT_LENGTH", b""),
        ("CONTENT_TYPE", b""),
    ]);
    with_core(settings_for(app), |core, _| {
        let mut io = FakeIo::new(b"");
        let n = 200_000;
        for round in 0..3 {
            let t = Instant::now();
            for i in 0..n {
                io.reset();
                let out = serve(core, &v, &mut io, i);
                assert!(!out.exception);
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            println!("round {round}: {ns:.0} ns/request ({} vars)", v.len());
        }
        assert_eq!(io.body_str(), "Hello World");
    });
}

/// What the event loop pays per turn to release the interpreter around its wait (run in
/// release, as above, with `perf_blocking_turn`).
#[test]
#[ignore]
fn perf_blocking_turn() {
    let app = r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [b'']
"#;
    with_core(settings_for(app), |core, _| {
        let n = 1_000_000;
        for round in 0..3 {
            let t = Instant::now();
            for _ in 0..n {
                core.blocking(&mut || {});
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            println!("round {round}: {ns:.0} ns per release and re-acquire");
        }
    });
}
