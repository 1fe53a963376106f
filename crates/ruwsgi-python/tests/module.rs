//! The `uwsgi` module: attributes, process functions, hooks, and the fork wrapper.

use ruwsgi_config::{OptValue, ProcessSettings, RequestSettings, Settings};
use ruwsgi_plugin::{ForkOutcome, Host, LanguagePlugin, ProcessRole};

use pyo3::prelude::*;

use crate::util::*;

const INSPECT: &str = r#"
import uwsgi
def application(environ, start_response):
    v = uwsgi.version
    assert isinstance(v, bytes) and v.startswith(b'2.1'), v
    vi = uwsgi.version_info
    assert isinstance(vi, tuple) and len(vi) == 5 and vi[:2] == (2, 1), vi
    assert isinstance(vi[4], bytes)
    assert isinstance(uwsgi.hostname, bytes)
    assert uwsgi.numproc == 4 and uwsgi.cores == 1 and uwsgi.has_threads == 1
    assert uwsgi.buffer_size == 8192
    assert isinstance(uwsgi.started_on, int)
    opt = uwsgi.opt
    assert opt['master'] is True, opt
    assert opt['socket'] == b':3031', opt
    assert opt['env'] == [b'A=1', b'B=2'], opt
    assert all(type(k) is str for k in opt)
    assert uwsgi.SPOOL_OK == -2 and uwsgi.SPOOL_RETRY == -1 and uwsgi.SPOOL_IGNORE == 0
    assert uwsgi.applications is None
    assert uwsgi.is_a_reload is False
    assert uwsgi.masterpid() == 4242
    assert uwsgi.worker_id() == 1 and uwsgi.mule_id() == 0
    assert uwsgi.total_requests() == 7
    w = uwsgi.workers()
    assert isinstance(w, tuple) and w[0]['id'] == 1 and w[0]['status'] == b'idle', w
    assert uwsgi.log('from app') is True
    assert uwsgi.reload() is True and uwsgi.stop() is None
    uwsgi.setprocname('renamed')
    assert uwsgi.request_id() == 5
    assert isinstance(uwsgi.micros(), int)
    rss, vsz = uwsgi.mem()
    assert rss > 0 and vsz > 0
    assert callable(uwsgi.start_response)
    start_response('200 OK', [])
    return [b'ok']
"#;

#[test]
fn module_attributes_and_functions() {
    let settings = Settings {
        processes: ProcessSettings {
            workers: 4,
            ..Default::default()
        },
        requests: RequestSettings {
            buffer_size: 8192,
            ..Default::default()
        },
        opt: vec![
            ("master".into(), OptValue::Flag),
            ("socket".into(), OptValue::Value(":3031".into())),
            ("env".into(), OptValue::Value("A=1".into())),
            ("env".into(), OptValue::Value("B=2".into())),
        ],
        ..settings_for(INSPECT)
    };
    let ((out, body), logs) = with_core_logs(settings, |core, _| {
        let mut io = FakeIo::new(b"");
        let out = serve(core, &vars(&[]), &mut io, 5);
        (out, io.body_str())
    });
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(body, "ok");
    assert!(logs.iter().any(|l| l == "from app"));
    assert_eq!(host().procname.lock().unwrap().as_deref(), Some("renamed"));
}

/// `uwsgi.workers()[i]['apps']`: one dict per app in load order, with uWSGI's keys and
/// types, for the calling worker (its apps as this core published them, with their
/// counters) and for another worker (what it published in its own scoreboard slot).
#[test]
fn workers_lists_every_workers_apps_with_counters() {
    let main = write_app(
        r#"
import uwsgi
INT_KEYS = ('id', 'modifier1', 'startup_time', 'interpreter', 'callable', 'requests',
            'exceptions')
def show(w):
    out = []
    for a in w['apps']:
        assert sorted(a) == sorted(INT_KEYS + ('mountpoint', 'chdir')), a
        assert all(type(a[k]) is int for k in INT_KEYS), a
        assert type(a['mountpoint']) is bytes and a['chdir'] == b'', a
        assert a['modifier1'] == 0 and a['interpreter'] != 0, a
        out.append('%d:%s:%d:%d' % (a['id'], a['mountpoint'].decode(), a['requests'],
                                     a['exceptions']))
    return ' '.join(out)
def application(environ, start_response):
    if environ['PATH_INFO'] == '/fail':
        raise RuntimeError('boom')
    (me,) = [w for w in uwsgi.workers() if w['id'] == uwsgi.worker_id()]
    (other,) = [w for w in uwsgi.workers() if w['id'] != uwsgi.worker_id()]
    assert me['apps'][0]['callable'] == id(application), me
    assert other['apps'][0]['callable'] == 0xca11, other
    start_response('200 OK', [])
    return [('%s | %s' % (show(me), show(other))).encode()]
"#,
    );
    let other = write_app(
        r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [b'other']
"#,
    );
    let settings = python_settings(ruwsgi_config::PythonSettings {
        wsgi_file: Some(main),
        mounts: vec![("/other/".into(), other.to_string_lossy().into())],
        manage_script_name: true,
        ..Default::default()
    });
    let (body, logs) = with_core_logs(settings, |core, _| {
        // Worker 2, as another process would fill its slot.
        let h = host();
        let w2 = h.board.worker(2);
        w2.publish_apps(&[ruwsgi_plugin::AppInfo {
            mountpoint: b"/w2",
            startup_time: 0,
            interpreter: 0x1e7,
            callable: 0xca11,
        }]);
        for _ in 0..5 {
            w2.count_app_request(0, ruwsgi_plugin::Writers::One);
        }
        w2.count_app_exception(0, ruwsgi_plugin::Writers::One);
        for path in [&b"/a"[..], b"/fail", b"/other/x", b"/other"] {
            let mut io = FakeIo::new(b"");
            serve(core, &vars(&[("PATH_INFO", path)]), &mut io, 0);
        }
        let mut io = FakeIo::new(b"");
        let out = serve(core, &vars(&[("PATH_INFO", b"/b")]), &mut io, 0);
        assert!(!out.exception);
        io.body_str()
    });
    // The request asking counts itself, as in uWSGI.
    assert_eq!(body, "0::3:1 1:/other/:2:0 | 0:/w2:5:1", "{logs:#?}");
}

/// With one core, the core's wait for clients releases the interpreter: a thread the app
/// started keeps running while the worker is idle.
#[test]
fn app_threads_run_while_a_single_core_waits() {
    let app = r#"
import threading
count = 0
stop = threading.Event()
def tick():
    global count
    while not stop.wait(0.01):
        count += 1
threading.Thread(target=tick, daemon=True).start()
def application(environ, start_response):
    if environ['PATH_INFO'] == '/stop':
        stop.set()
    start_response('200 OK', [])
    return [str(count).encode()]
"#;
    let (advanced, logs) = with_core_logs(settings_for(app), |core, _| {
        let count = |core: &mut dyn ruwsgi_plugin::Core, path: &[u8]| {
            let mut io = FakeIo::new(b"");
            serve(core, &vars(&[("PATH_INFO", path)]), &mut io, 0);
            io.body_str().parse::<u64>().unwrap()
        };
        let before = count(core, b"/");
        core.blocking(&mut || std::thread::sleep(std::time::Duration::from_millis(500)));
        let after = count(core, b"/stop");
        after - before
    });
    // 50 ticks in an idle 500 ms; a held interpreter would allow none or one.
    assert!(
        advanced > 20,
        "the app thread ticked {advanced} times; {logs:#?}"
    );
}

#[test]
fn request_functions_outside_a_request_raise() {
    let _g = serial();
    let plugin = ruwsgi_python::PythonPlugin::new(Default::default());
    plugin
        .init(Settings::default().plugin_view(), host())
        .unwrap();
    pyo3::Python::attach(|py| {
        let m = py.import("uwsgi").unwrap();
        let err = m.call_method0("request_id").unwrap_err();
        assert!(err.is_instance_of::<pyo3::exceptions::PySystemError>(py));
    });
}

#[test]
fn hooks_are_called_and_errors_swallowed() {
    let app = r#"
import uwsgi
uwsgi.post_fork_hook = lambda: uwsgi.log('post-fork ran')
def atexit():
    raise RuntimeError('atexit failed')
uwsgi.atexit = atexit
uwsgi.after_req_hook = lambda: uwsgi.log('after request')
def application(environ, start_response):
    start_response('200 OK', [])
    return [b'ok']
"#;
    let (_, logs) = with_core_logs(settings_for(app), |core, plugin| {
        plugin.post_fork(ProcessRole::Worker { id: 1 });
        for i in 0..2 {
            let mut io = FakeIo::new(b"");
            serve(core, &vars(&[]), &mut io, i);
        }
        plugin.at_exit();
    });
    assert!(logs.iter().any(|l| l == "post-fork ran"), "{logs:#?}");
    assert_eq!(logs.iter().filter(|l| *l == "after request").count(), 2);
    assert!(
        logs.iter()
            .any(|l| l.contains("RuntimeError: atexit failed")),
        "{logs:#?}"
    );
    // Clear the hooks for the other tests.
    pyo3::Python::attach(|py| {
        let m = py.import("uwsgi").unwrap();
        for h in ["post_fork_hook", "atexit", "after_req_hook"] {
            let _ = m.delattr(h);
        }
    });
}

#[test]
fn threaded_core_sets_multithread_and_core() {
    let app = r#"
def application(environ, start_response):
    start_response('200 OK', [])
    return [repr((environ['wsgi.multithread'], environ['uwsgi.core'])).encode()]
"#;
    let mut settings = settings_for(app);
    settings.processes.threads = 2;
    let body = with_core(settings, |core, _| {
        let mut io = FakeIo::new(b"");
        serve(core, &vars(&[]), &mut io, 0);
        io.body_str()
    });
    assert_eq!(body, "(True, 0)");
}

/// CPython 3.11 cannot give a forked child a new first thread state when the forking
/// thread's own state was a temporary one (the test thread is not the one that initialised
/// the interpreter): the child stays attached from before the fork until `_exit`. The
/// server forks from the initialising thread, where this does not arise.
#[test]
fn fork_runs_python_hooks_in_both_processes() {
    let _g = serial();
    let plugin = ruwsgi_python::PythonPlugin::new(Default::default());
    plugin
        .init(Settings::default().plugin_view(), host())
        .unwrap();
    Python::attach(|py| {
        let outcome = plugin.around_fork(&mut || {
            #[allow(unsafe_code)]
            // SAFETY: the child only runs Python and `_exit`s below.
            let pid = unsafe { libc::fork() };
            match pid {
                0 => ForkOutcome::Child,
                p if p > 0 => ForkOutcome::Parent(p),
                _ => {
                    ForkOutcome::Failed(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                }
            }
        });
        match outcome {
            ForkOutcome::Child => {
                let ok = py
                    .eval(c"__import__('threading').active_count()", None, None)
                    .and_then(|v| v.extract::<i32>())
                    .map(|n| n == 1)
                    .unwrap_or(false);
                #[allow(unsafe_code)]
                // SAFETY: leaving the forked child without running the parent's destructors.
                unsafe {
                    libc::_exit(if ok { 0 } else { 1 })
                };
            }
            ForkOutcome::Parent(pid) => {
                let mut status = 0;
                #[allow(unsafe_code)]
                // SAFETY: waiting for our own child.
                let r = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert_eq!(r, pid);
                assert!(
                    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                    "{status}"
                );
                let two: i32 = py.eval(c"1 + 1", None, None).unwrap().extract().unwrap();
                assert_eq!(two, 2);
            }
            ForkOutcome::Failed(e) => panic!("fork failed: {e}"),
        }
    });
}

#[test]
fn run_mule_runs_a_script_as_main_and_returns_its_exit_code() {
    let app = "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n";
    let dir = std::env::temp_dir().join(format!("ruwsgi-mule-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let ok = script(
        "ok.py",
        "import uwsgi\nuwsgi.log('mule main: %s %s' % (__name__, __file__.endswith('ok.py')))\n",
    );
    let exits = script("exits.py", "import sys\nsys.exit(3)\n");
    let raises = script("raises.py", "raise ValueError('mule broke')\n");
    let missing = dir.join("missing.py");
    let (codes, logs) = with_core_logs(settings_for(app), |_core, plugin| {
        [&ok, &exits, &raises, &missing].map(|p| plugin.run_mule(p).map_err(|e| e.to_string()))
    });
    assert_eq!(codes[0], Ok(0));
    assert_eq!(codes[1], Ok(3));
    assert_eq!(codes[2], Ok(1));
    assert!(
        codes[3]
            .as_ref()
            .is_err_and(|e| e.contains("cannot read the mule script")),
        "{codes:?}"
    );
    assert!(
        logs.iter().any(|l| l == "mule main: __main__ True"),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("ValueError: mule broke")),
        "{logs:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const RPC_APP: &str = r#"
import uwsgi
def py_upper(*args):
    return b" ".join(a.upper() for a in args)
assert uwsgi.register_rpc("py_upper", py_upper) is True
def application(environ, start_response):
    # a function registered in Rust, called from Python
    r = uwsgi.call(b"rust_len", b"abc", b"de")
    start_response('200 OK', [])
    return [r]
"#;

/// The RPC table is the host's: a function registered from Python is callable through the
/// Rust API (as a Rust-native or Lua plugin would call it), and one registered in Rust is
/// callable from Python, with bytes in and out both ways.
#[test]
fn rpc_functions_cross_between_rust_and_python() {
    let h = host();
    let rust_len: std::sync::Arc<dyn ruwsgi_plugin::RpcFunction> =
        std::sync::Arc::new(|args: &[&[u8]]| {
            Ok(Some(
                args.iter()
                    .map(|a| a.len().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes(),
            ))
        });
    h.register_rpc(b"rust_len", 0, rust_len).unwrap();
    let ((out, body, from_rust), logs) = with_core_logs(settings_for(RPC_APP), |core, _| {
        let mut io = FakeIo::new(b"");
        let out = serve(core, &vars(&[]), &mut io, 0);
        // called from Rust while the core holds the interpreter, as a worker answering a
        // 173 packet does
        let from_rust = h.rpc_call(b"py_upper", &[b"ab", b"cd"]);
        (out, io.body_str(), from_rust)
    });
    assert!(!out.exception, "{logs:#?}");
    assert_eq!(body, "3,2");
    assert_eq!(from_rust.as_deref(), Some(&b"AB CD"[..]));
    let names = h.rpc_list();
    assert!(names.contains(&b"py_upper".to_vec()) && names.contains(&b"rust_len".to_vec()));
    // and from a thread that does not hold the interpreter
    let h2 = h.clone();
    let r = std::thread::spawn(move || h2.rpc_call(b"py_upper", &[b"x"]))
        .join()
        .unwrap();
    assert_eq!(r.as_deref(), Some(&b"X"[..]));
}
