"""The README's promise: hello world over --http-socket, master + 2 workers, ini, stop."""
import re
import signal
import socket

import requests

from helpers import REPO, children_of, port_is_free, wait_until

HELLO = REPO / "examples" / "hello.py"
HELLO_INI = REPO / "examples" / "hello.ini"


def test_hello_world_http_socket(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--master",
                 "--processes", "2")
    r = requests.get(srv.url + "/", timeout=5)
    assert r.status_code == 200
    assert r.content == b"Hello, World!"
    assert r.headers["Content-Type"].startswith("text/plain")
    line = srv.wait_log(r"ruwsgi: listening on 127\.0\.0\.1:(\d+) \(http-socket, fd \d+\)")[0]
    assert int(line.group(1)) == srv.port
    srv.wait_log(r"spawned ruwsgi worker [12] \(pid: \d+, cores: \d+\)", count=2)
    assert srv.stop() == 0
    assert port_is_free(srv.port)


def test_hello_world_from_ini(ruwsgi, tmp_path):
    # the shipped example binds 127.0.0.1:8000; run a copy that differs only in the port
    text = HELLO_INI.read_text()
    assert re.search(r"(?m)^http-socket\s*=\s*127\.0\.0\.1:8000\s*$", text)
    ini = tmp_path / "hello.ini"
    ini.write_text(re.sub(r"(?m)^http-socket\s*=.*$", "http-socket = 127.0.0.1:0", text)
                   .replace("%dhello.py", str(HELLO)))
    srv = ruwsgi("--ini", ini, n_sockets=1)
    r = requests.get(srv.url, timeout=5)
    assert (r.status_code, r.content) == (200, b"Hello, World!")
    wait_until(lambda: len(srv.children()) >= 2, 10, what="2 workers")
    assert srv.stop() == 0


def test_ini_dir_placeholder_relative_to_file(ruwsgi, tmp_path):
    """%d in the example ini resolves to the ini's own directory, whatever the cwd."""
    d = tmp_path / "conf"
    d.mkdir()
    (d / "hello.py").write_text(HELLO.read_text())
    (d / "hello.ini").write_text(
        re.sub(r"(?m)^http-socket\s*=.*$", "http-socket = 127.0.0.1:0", HELLO_INI.read_text()))
    srv = ruwsgi("--ini", d / "hello.ini", cwd=tmp_path)
    assert requests.get(srv.url, timeout=5).content == b"Hello, World!"


def test_workers_are_children_of_master(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--master",
                 "--processes", "2")
    logged = {int(m.group(2)) for m in
              srv.wait_log(r"spawned ruwsgi worker (\d+) \(pid: (\d+)", count=2)}
    kids = set(wait_until(lambda: (lambda k: k if len(k) >= 2 else None)(children_of(srv.pid)),
                          10, what="2 children"))
    assert logged <= kids, (logged, kids)
    srv.stop()


def test_keepalive_many_requests(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--master",
                 "--processes", "2")
    with requests.Session() as s:
        for _ in range(50):
            r = s.get(srv.url, timeout=5)
            assert r.content == b"Hello, World!"


def test_request_log_line(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--master",
                 "--processes", "1")
    requests.get(srv.url + "/logged?x=1", timeout=5)
    m = srv.wait_log(r"\[pid: \d+\|app: 0\|req: \d+/\d+\] 127\.0\.0\.1 \(\) \{\d+ vars in \d+ bytes\} "
                     r"\[[^\]]+\] GET /logged\?x=1 => generated 13 bytes in \d+ msecs "
                     r"\(HTTP/1\.1 200\) \d+ headers in \d+ bytes \(\d+ switches on core \d+\)")
    assert m


def test_disable_logging(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--disable-logging")
    requests.get(srv.url + "/quiet-please", timeout=5)
    requests.get(srv.url + "/", timeout=5)
    assert "/quiet-please" not in srv.log_text()


def test_logto_file(ruwsgi, tmp_path):
    logf = tmp_path / "out.log"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--logto", logf,
                 ready=False)
    # with --logto the listening line goes to the file
    srv.log_path = logf
    srv.wait_ready()
    requests.get(srv.url + "/to-file", timeout=5)
    wait_until(lambda: "/to-file" in logf.read_text(errors="replace"), 10, what="request log in --logto")


def test_pidfile_and_vacuum(ruwsgi, tmp_path):
    pidfile = tmp_path / "r.pid"
    sock = tmp_path / "app.sock"
    srv = ruwsgi("--socket", sock, "--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO,
                 "--master", "--pidfile", pidfile, "--vacuum")
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="pidfile")
    assert int(pidfile.read_text().strip()) == srv.pid
    assert sock.exists()
    assert srv.stop() == 0
    assert not sock.exists(), "vacuum must remove the unix socket"
    assert not pidfile.exists(), "vacuum must remove the pidfile"


def test_sigterm_is_graceful_stop(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--master",
                 "--processes", "2")
    assert srv.stop(sig=signal.SIGTERM, timeout=15) == 0
    srv.wait_log(r"goodbye to ruwsgi\.")
    assert port_is_free(srv.port)


def test_threads_option(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "1", "--threads", "4")
    import concurrent.futures as cf
    import time
    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(4) as ex:
        rs = list(ex.map(lambda _: requests.get(srv.url + "/sleep?s=1", timeout=10), range(4)))
    elapsed = time.monotonic() - t0
    assert all(r.status_code == 200 for r in rs)
    assert elapsed < 3.0, "4 threads should serve 4 × 1 s sleeps concurrently (took %.1fs)" % elapsed
    env = requests.get(srv.url + "/env", timeout=5).json()
    assert env["wsgi.multithread"] is True


def test_home_venv_imports_flask(ruwsgi, tmp_path):
    app = tmp_path / "uses_flask.py"
    app.write_text("import flask\n"
                   "def application(e, sr):\n"
                   "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [flask.__name__.encode()]\n")
    from helpers import VENV
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--home", VENV)
    assert requests.get(srv.url, timeout=5).content == b"flask"


def test_wsgi_validator_passes(ruwsgi):
    """The fault app wrapped in wsgiref.validate: the server's side of WSGI is checked."""
    from helpers import APPS
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "validated.py",
                 "--processes", "1")
    for path, body in [("/", None), ("/pid", None), ("/echo", b"abc" * 1000),
                       ("/len", b"z" * 70000), ("/chunks?n=3", None), ("/big?mb=1", None),
                       ("/env?a=1", None), ("/nope", None)]:
        if body is None:
            r = requests.get(srv.url + path, timeout=10)
        else:
            r = requests.post(srv.url + path, data=body, timeout=10)
        assert r.status_code in (200, 404), (path, r.status_code, srv.log_tail())
    assert "AssertionError" not in srv.log_text(), srv.log_tail()
    assert "WSGIWarning" not in srv.log_text(), srv.log_tail()


def test_module_and_chdir(ruwsgi, tmp_path):
    pkg = tmp_path / "proj" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "web.py").write_text("def app(e, sr):\n"
                                "    import os\n"
                                "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                                "    return [os.getcwd().encode()]\n")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--chdir", tmp_path / "proj",
                 "--module", "mypkg.web:app")
    r = requests.get(srv.url, timeout=5)
    assert r.content == str(tmp_path / "proj").encode()


def test_callable_option(ruwsgi, tmp_path):
    app = tmp_path / "named.py"
    app.write_text("def myapp(e, sr):\n"
                   "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [b'named callable']\n")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--callable", "myapp")
    assert requests.get(srv.url, timeout=5).content == b"named callable"


def test_env_option(ruwsgi, tmp_path):
    app = tmp_path / "envapp.py"
    app.write_text("import os\n"
                   "def application(e, sr):\n"
                   "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
                   "    return [os.environ.get('RUWSGI_TEST_VAR', 'unset').encode()]\n")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--env", "RUWSGI_TEST_VAR=from-env-option")
    assert requests.get(srv.url, timeout=5).content == b"from-env-option"


def test_mount_and_manage_script_name(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--mount", "/app=%s" % fault_app,
                 "--manage-script-name", ready_path="/app/")
    env = requests.get(srv.url + "/app/env", timeout=5).json()
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/env"


def test_unix_http_socket(ruwsgi, tmp_path):
    sock = tmp_path / "http.sock"
    srv = ruwsgi("--http-socket", sock, "--wsgi-file", HELLO)
    assert srv.listeners[0].addr == str(sock)
    from helpers import http_request
    r = http_request(str(sock), "GET", "/")
    assert r.status == 200 and r.body == b"Hello, World!"


def test_version_flag():
    from helpers import run_binary
    r = run_binary(["--version"])
    assert r.returncode == 0
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr)
