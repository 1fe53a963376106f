//! `wsgi.input`: streaming reads, lines, iteration, truncated bodies, invalidation.

use pyo3::prelude::*;

use crate::util::*;

fn echo(code_body: &str, body: &[u8], truncate_at: Option<usize>) -> (FakeIo, bool, Vec<String>) {
    let app = format!(
        r#"
def application(environ, start_response):
    inp = environ['wsgi.input']
{code_body}
    start_response('200 OK', [])
    return [repr(out).encode()]
"#
    );
    let mut io = FakeIo::new(body);
    io.truncate_at = truncate_at;
    let (out, logs) = one_request(&app, &vars(&[]), &mut io);
    (io, out.exception, logs)
}

#[test]
fn read_all_and_sized() {
    let (io, exc, logs) = echo(
        "    out = [inp.read(3), inp.read(0), inp.read(4), inp.read(), inp.read(), inp.read(5)]",
        b"abcdefghijkl",
        None,
    );
    assert!(!exc, "{logs:#?}");
    assert_eq!(io.body_str(), "[b'abc', b'', b'defg', b'hijkl', b'', b'']");
}

#[test]
fn read_none_and_negative() {
    let (io, exc, logs) = echo("    out = [inp.read(None), inp.read(-1)]", b"xyz", None);
    assert!(!exc, "{logs:#?}");
    assert_eq!(io.body_str(), "[b'xyz', b'']");
}

#[test]
fn readline_and_limits() {
    let (io, exc, logs) = echo(
        "    out = [inp.readline(), inp.readline(2), inp.readline(), inp.readline(), inp.readline()]",
        b"one\ntwo\nthree",
        None,
    );
    assert!(!exc, "{logs:#?}");
    assert_eq!(io.body_str(), "[b'one\\n', b'tw', b'o\\n', b'three', b'']");
}

#[test]
fn readlines_and_iteration() {
    let (io, exc, logs) = echo(
        "    out = [inp.readlines(3), list(inp)]",
        b"a\nbb\nccc\ndddd",
        None,
    );
    assert!(!exc, "{logs:#?}");
    assert_eq!(io.body_str(), "[[b'a\\n', b'bb\\n'], [b'ccc\\n', b'dddd']]");
}

#[test]
fn large_body_streams() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (io, exc, logs) = echo(
        "    import hashlib\n    a = inp.read(100000)\n    b = inp.read()\n    out = (len(a) + len(b), hashlib.sha1(a + b).hexdigest())",
        &body,
        None,
    );
    assert!(!exc, "{logs:#?}");
    let want = {
        // sha1 computed by Python too, so compare against a direct computation in Python.
        pyo3::Python::attach(|py| {
            let m = pyo3::types::PyModule::import(py, "hashlib").unwrap();
            let h = m
                .call_method1("sha1", (pyo3::types::PyBytes::new(py, &body),))
                .unwrap();
            let hex: String = h.call_method0("hexdigest").unwrap().extract().unwrap();
            hex
        })
    };
    assert_eq!(io.body_str(), format!("(300000, '{want}')"));
}

#[test]
fn truncated_body_raises() {
    let (io, exc, logs) = echo(
        r#"    first = inp.read(2)
    try:
        inp.read()
        out = 'no error'
    except OSError as e:
        out = ('raised', first, str(e))
    try:
        inp.read(1)
    except OSError:
        out = out + ('again',)"#,
        b"abcdefghij",
        Some(4),
    );
    assert!(!exc, "{logs:#?}");
    assert!(
        io.body_str()
            .starts_with("('raised', b'ab', 'client closed"),
        "{}",
        io.body_str()
    );
    assert!(io.body_str().ends_with("'again')"), "{}", io.body_str());
}

#[test]
fn truncated_body_uncaught_is_500_and_close() {
    let app = r#"
def application(environ, start_response):
    environ['wsgi.input'].read()
    start_response('200 OK', [])
    return [b'unreachable']
"#;
    let mut io = FakeIo::new(b"abcdef");
    io.truncate_at = Some(3);
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(out.exception);
    assert!(out.close, "a broken body leaves the connection unusable");
    assert_eq!(io.status_str(), "500 Internal Server Error");
    assert!(logs.iter().any(|l| l.contains("OSError")), "{logs:#?}");
}

#[test]
fn input_is_invalid_after_the_request() {
    let app = r#"
SAVED = []
def application(environ, start_response):
    start_response('200 OK', [])
    if SAVED:
        try:
            SAVED[0].read()
            return [b'readable']
        except ValueError:
            return [b'invalidated']
    SAVED.append(environ['wsgi.input'])
    return [b'saved']
"#;
    with_core(settings_for(app), |core, _| {
        let mut io = FakeIo::new(b"body");
        serve(core, &vars(&[]), &mut io, 0);
        assert_eq!(io.body_str(), "saved");
        let mut io = FakeIo::new(b"other");
        serve(core, &vars(&[]), &mut io, 1);
        assert_eq!(io.body_str(), "invalidated");
    });
}
