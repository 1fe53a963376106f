//! The request path: environ, start_response, body iteration, errors.

use crate::util::*;

const HELLO: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'Hello World']
"#;

#[test]
fn hello_world() {
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(HELLO, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:?}");
    assert!(!out.close);
    assert_eq!(io.status_str(), "200 OK");
    assert_eq!(io.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(io.body_str(), "Hello World");
    assert!(io.finished);
}

#[test]
fn environ_keys_and_types() {
    let app = r#"
import uwsgi
def application(environ, start_response):
    assert environ['PATH_INFO'] == '/caf\xe9', repr(environ['PATH_INFO'])
    assert environ['REQUEST_METHOD'] == 'GET'
    assert environ['X_DUP'] == 'second', environ['X_DUP']
    assert environ['HTTP_X_CUSTOM'] == 'v\xff'
    assert environ['wsgi.version'] == (1, 0)
    assert environ['wsgi.url_scheme'] == 'http'
    assert environ['wsgi.run_once'] is False
    assert environ['wsgi.multithread'] is False
    assert environ['wsgi.multiprocess'] is False
    assert hasattr(environ['wsgi.input'], 'read')
    assert hasattr(environ['wsgi.errors'], 'write')
    assert callable(environ['wsgi.file_wrapper'])
    assert isinstance(environ['uwsgi.version'], bytes)
    assert isinstance(environ['uwsgi.node'], bytes)
    assert 'uwsgi.core' not in environ
    assert environ['wsgi.errors'].write('hello errors\n') == 13
    for k, v in environ.items():
        assert type(k) is str, k
        if k.isupper():
            assert type(v) is str, (k, v)
    assert uwsgi.env is environ
    start_response('200 OK', [])
    return [b'ok']
"#;
    let v = vars(&[
        ("PATH_INFO", b"/caf\xe9"),
        ("X_DUP", b"first"),
        ("X_DUP", b"second"),
        ("HTTP_X_CUSTOM", b"v\xff"),
        ("wsgi.input", b"spoofed"),
    ]);
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &v, &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(io.body_str(), "ok");
    assert!(logs.iter().any(|l| l == "hello errors"), "{logs:#?}");
}

#[test]
fn write_callable_and_body() {
    let app = r#"
def application(environ, start_response):
    write = start_response('200 OK', [('X-A', 'b')])
    write(b'one,')
    return [b'two']
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(io.body_str(), "one,two");
    assert_eq!(io.header("x-a").as_deref(), Some("b"));
}

#[test]
fn exc_info_before_head_replaces_response() {
    let app = r#"
import sys
def application(environ, start_response):
    start_response('200 OK', [('X-First', '1')])
    try:
        raise ValueError('boom')
    except ValueError:
        start_response('503 Service Unavailable', [('X-Second', '2')], sys.exc_info())
    return [b'sorry']
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(io.status_str(), "503 Service Unavailable");
    assert_eq!(io.header("x-first"), None);
    assert_eq!(io.header("x-second").as_deref(), Some("2"));
    assert_eq!(io.body_str(), "sorry");
}

#[test]
fn exc_info_after_head_reraises() {
    let app = r#"
import sys
def application(environ, start_response):
    write = start_response('200 OK', [])
    write(b'partial')
    try:
        raise KeyError('late')
    except KeyError:
        start_response('500 Oops', [], sys.exc_info())
    return [b'never']
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(out.exception);
    assert!(out.close);
    assert_eq!(io.status_str(), "200 OK");
    assert_eq!(io.body_str(), "partial");
    assert!(logs.iter().any(|l| l.contains("KeyError")));
}

#[test]
fn start_response_twice_without_exc_info_is_an_error() {
    let app = r#"
def application(environ, start_response):
    start_response('200 OK', [])
    try:
        start_response('201 Created', [])
    except RuntimeError:
        return [b'refused']
    return [b'accepted']
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(io.status_str(), "200 OK");
    assert_eq!(io.body_str(), "refused");
}

#[test]
fn generator_body_and_close_called() {
    let app = r#"
CLOSED = []
class Body:
    def __init__(self):
        self.items = [b'a', b'b', b'c']
    def __iter__(self):
        return iter(self.items)
    def close(self):
        CLOSED.append(1)

def gen():
    yield b'x'
    yield b''
    yield b'y'

def application(environ, start_response):
    start_response('200 OK', [])
    if environ['PATH_INFO'] == '/gen':
        return gen()
    if environ['PATH_INFO'] == '/count':
        return [str(len(CLOSED)).encode()]
    return Body()
"#;
    with_core(settings_for(app), |core, _| {
        let mut io = FakeIo::new(b"");
        assert!(!serve(core, &vars(&[]), &mut io, 0).exception);
        assert_eq!(io.body_str(), "abc");
        let mut io = FakeIo::new(b"");
        assert!(!serve(core, &vars(&[("PATH_INFO", b"/gen")]), &mut io, 1).exception);
        assert_eq!(io.body_str(), "xy");
        let mut io = FakeIo::new(b"");
        serve(core, &vars(&[("PATH_INFO", b"/count")]), &mut io, 2);
        assert_eq!(io.body_str(), "1");
    });
}

#[test]
fn close_called_when_body_fails() {
    let app = r#"
import uwsgi
class Body:
    def __iter__(self):
        yield b'ok'
        yield 'not bytes'
    def close(self):
        uwsgi.log('body closed')
def application(environ, start_response):
    start_response('200 OK', [])
    return Body()
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(out.exception);
    // The head went out with the first item: the connection must close.
    assert!(out.close);
    assert!(logs.iter().any(|l| l == "body closed"), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("TypeError")), "{logs:#?}");
}

fn assert_500(code: &str, log_needle: &str) {
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(code, &vars(&[]), &mut io);
    assert!(out.exception, "{logs:#?}");
    assert!(!out.close);
    assert_eq!(io.status_str(), "500 Internal Server Error");
    assert_eq!(io.body_str(), "Internal Server Error\n");
    assert!(
        logs.iter().any(|l| l.contains(log_needle)),
        "no {log_needle:?} in {logs:#?}"
    );
}

#[test]
fn bad_status_type_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response(b'200 OK', [])
    return [b'x']
"#,
        "TypeError",
    );
}

#[test]
fn bad_header_type_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response('200 OK', [('X-Num', 5)])
    return [b'x']
"#,
        "TypeError",
    );
}

#[test]
fn header_with_crlf_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response('200 OK', [('X-Evil', 'a\r\nSet-Cookie: x=1')])
    return [b'x']
"#,
        "invalid response",
    );
}

#[test]
fn invalid_status_line_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response('OK', [])
    return [b'x']
"#,
        "invalid response",
    );
}

#[test]
fn str_body_item_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return ['text']
"#,
        "TypeError",
    );
}

#[test]
fn app_exception_is_500_with_traceback() {
    assert_500(
        r#"
def application(environ, start_response):
    raise ZeroDivisionError('nope')
"#,
        "ZeroDivisionError: nope",
    );
}

#[test]
fn none_body_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return None
"#,
        "iterable",
    );
}

#[test]
fn missing_start_response_is_500() {
    assert_500(
        r#"
def application(environ, start_response):
    return []
"#,
        "start_response",
    );
}

#[test]
fn file_wrapper_uses_sendfile() {
    let data = scratch_dir().join("payload.bin");
    std::fs::write(&data, b"0123456789").unwrap();
    let app = format!(
        r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    f = open({path:?}, 'rb')
    f.seek(2)
    return environ['wsgi.file_wrapper'](f, 4)
"#,
        path = data.to_str().unwrap()
    );
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(&app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(io.sendfiles, vec![(2, None)]);
    assert_eq!(io.body_str(), "23456789");
}

#[test]
fn file_wrapper_without_fileno_iterates() {
    let app = r#"
import io
def application(environ, start_response):
    start_response('200 OK', [])
    return environ['wsgi.file_wrapper'](io.BytesIO(b'abcdefghij'), 3)
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert!(io.sendfiles.is_empty());
    assert_eq!(io.body_str(), "abcdefghij");
}

#[test]
fn mounts_with_manage_script_name() {
    let mk = |name: &str| {
        write_app(&format!(
            r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [('{name}:' + environ.get('SCRIPT_NAME', '') + '|' + environ['PATH_INFO']).encode()]
"#
        ))
    };
    let default = mk("default");
    let foo = mk("foo");
    let foobar = mk("foobar");
    let settings = python_settings(ruwsgi_config::PythonSettings {
        wsgi_file: Some(default),
        mounts: vec![
            ("/foo".into(), foo.to_string_lossy().into()),
            ("/foo/bar/".into(), foobar.to_string_lossy().into()),
        ],
        manage_script_name: true,
        ..Default::default()
    });
    with_core(settings, |core, _| {
        let mut get = |path: &[u8]| {
            let mut io = FakeIo::new(b"");
            let out = serve(core, &vars(&[("PATH_INFO", path)]), &mut io, 0);
            assert!(!out.exception);
            io.body_str()
        };
        assert_eq!(get(b"/foo/x"), "foo:/foo|/x");
        assert_eq!(get(b"/foo"), "foo:/foo|");
        assert_eq!(get(b"/foo/bar/baz"), "foobar:/foo/bar/|/baz");
        assert_eq!(get(b"/foobar"), "default:|/foobar");
        assert_eq!(get(b"/"), "default:|/");
    });
}

/// `mount = /foobis/=...`: the mountpoint is `SCRIPT_NAME` exactly as written, and it is
/// matched without its slash at a segment boundary (uWSGI's manage-script-name).
#[test]
fn trailing_slash_mountpoint_keeps_its_slash() {
    let app = |name: &str| {
        write_app(&format!(
            r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [('{name}:' + environ.get('SCRIPT_NAME', '') + '|' + environ['PATH_INFO']).encode()]
"#
        ))
    };
    let settings = python_settings(ruwsgi_config::PythonSettings {
        wsgi_file: Some(app("default")),
        mounts: vec![
            ("/foo".into(), app("foo").to_string_lossy().into()),
            ("/foobis/".into(), app("foobis").to_string_lossy().into()),
        ],
        manage_script_name: true,
        ..Default::default()
    });
    with_core(settings, |core, _| {
        let mut get = |extra: &[(&str, &[u8])]| {
            let mut io = FakeIo::new(b"");
            let out = serve(core, &vars(extra), &mut io, 0);
            assert!(!out.exception);
            io.body_str()
        };
        let path = |p: &'static [u8]| [("PATH_INFO", p)];
        assert_eq!(get(&path(b"/foobis")), "foobis:/foobis/|");
        assert_eq!(get(&path(b"/foobis/")), "foobis:/foobis/|/");
        assert_eq!(get(&path(b"/foobis/resource")), "foobis:/foobis/|/resource");
        assert_eq!(get(&path(b"/foobisis/")), "default:|/foobisis/");
        assert_eq!(get(&path(b"/foo/")), "foo:/foo|/");
        assert_eq!(get(&path(b"/fooanything")), "default:|/fooanything");
        // A SCRIPT_NAME from the front end names the mount with or without the slash.
        for sn in [&b"/foobis"[..], b"/foobis/"] {
            let body = get(&[("SCRIPT_NAME", sn), ("PATH_INFO", b"/r")]);
            assert_eq!(body, format!("foobis:{}|/r", String::from_utf8_lossy(sn)));
        }
    });
}

#[test]
fn script_name_selects_mount_without_rewrite() {
    let a = write_app(
        r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [b'mounted:' + environ['PATH_INFO'].encode()]
"#,
    );
    let settings = python_settings(ruwsgi_config::PythonSettings {
        mounts: vec![("/app".into(), a.to_string_lossy().into())],
        ..Default::default()
    });
    with_core(settings, |core, _| {
        let mut io = FakeIo::new(b"");
        serve(
            core,
            &vars(&[("SCRIPT_NAME", b"/app"), ("PATH_INFO", b"/x")]),
            &mut io,
            0,
        );
        assert_eq!(io.body_str(), "mounted:/x");
        // No default app: nothing matches a bare request.
        let mut io = FakeIo::new(b"");
        let out = serve(core, &vars(&[]), &mut io, 0);
        assert!(!out.exception);
        assert_eq!(io.status_str(), "500 Internal Server Error");
    });
}

#[test]
fn module_spec_and_missing_callable() {
    let dir = scratch_dir();
    std::fs::write(
        dir.join("ruwsgi_test_mod.py"),
        "def app(e, s):\n    s('200 OK', [])\n    return [b'from module']\n",
    )
    .unwrap();
    let settings = python_settings(ruwsgi_config::PythonSettings {
        module: Some("ruwsgi_test_mod:app".into()),
        pythonpath: vec![dir.clone()],
        ..Default::default()
    });
    let body = with_core(settings, |core, _| {
        let mut io = FakeIo::new(b"");
        serve(core, &vars(&[]), &mut io, 0);
        io.body_str()
    });
    assert_eq!(body, "from module");

    let _g = serial();
    use ruwsgi_plugin::LanguagePlugin;
    let settings = python_settings(ruwsgi_config::PythonSettings {
        module: Some("ruwsgi_test_mod:nothere".into()),
        pythonpath: vec![dir],
        ..Default::default()
    });
    host().take_logs();
    let plugin = ruwsgi_python::PythonPlugin::new(settings.python.clone());
    plugin.init(settings.plugin_view(), host()).unwrap();
    let err = plugin.load_apps().unwrap_err().to_string();
    assert!(err.contains("nothere"), "{err}");
    let settings = python_settings(ruwsgi_config::PythonSettings {
        module: Some("no_such_module_xyz".into()),
        ..Default::default()
    });
    let plugin = ruwsgi_python::PythonPlugin::new(settings.python.clone());
    plugin.init(settings.plugin_view(), host()).unwrap();
    let err = plugin.load_apps().unwrap_err().to_string();
    assert!(err.contains("No module named"), "{err}");
    assert!(!err.contains('\n'));
    assert!(host().logged("ModuleNotFoundError"));
}

#[test]
fn disconnect_closes() {
    let app = r#"
import uwsgi
def application(environ, start_response):
    start_response('200 OK', [])
    assert uwsgi.connection_fd() >= 0
    uwsgi.disconnect()
    return [b'dropped']
"#;
    let mut io = FakeIo::new(b"");
    let (out, logs) = one_request(app, &vars(&[]), &mut io);
    assert!(!out.exception, "{logs:#?}");
    assert!(out.close);
    assert!(io.disconnected);
    assert_eq!(io.body_str(), "");
}
