"""Options that must start, not stop (issue 13): plugins (notfound), exit-on-reload,
wsgi-accept-buffer, daemonize/daemonize2, pidfile2, master-as-root, py-autoreload, and the
compatibility flags that are only accepted."""
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import requests

from helpers import free_port, pid_alive, server_bin, wait_until

HELLO_APP = (
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [b'hello']\n"
)

BUFFER_APP = (
    "import array\n"
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    if environ['PATH_INFO'] == '/gen':\n"
    "        return iter([bytearray(b'ab'), memoryview(b'xcdx')[1:3], b'ef'])\n"
    "    return [bytearray(b'ab'), memoryview(b'cd'), array.array('B', b'ef'), b'gh']\n"
)

# No import at all: as `nobody`, the interpreter's own files under /root are unreadable.
UID_APP = (
    "def application(environ, start_response):\n"
    "    import os\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [('%d %d' % (os.getuid(), os.getppid())).encode()]\n"
)

RELOAD_APP = (
    "import uwsgi\n"
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    if environ['PATH_INFO'] == '/reload':\n"
    "        uwsgi.reload()\n"
    "    return [b'gen %d' % uwsgi.is_a_reload]\n"
)


def write(d, name, text):
    path = os.path.join(str(d), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def get(url, timeout=5.0):
    return requests.get(url, timeout=timeout)


@pytest.fixture
def world_dir():
    """A directory every user can write (outside /root and pytest's 0700 tmp dirs)."""
    d = tempfile.mkdtemp(prefix="ruwsgi-opts-", dir="/tmp")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons():
    """Pids of detached masters to kill at teardown (they left the test's process group)."""
    pids = []
    yield pids
    for pid in pids:
        for kid in _children(pid):
            _kill(kid)
        _kill(pid)


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [int(x) for x in out.split()]


def read_pid(path, timeout=10.0):
    def ready():
        try:
            text = open(path).read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None
    return wait_until(ready, timeout, what="pidfile %s" % path)


def wait_answer(url, timeout=15.0):
    def ok():
        try:
            return get(url, timeout=2.0)
        except requests.RequestException:
            return None
    return wait_until(ok, timeout, what="an answer from %s" % url)


def wait_gone(pid, timeout=15.0):
    wait_until(lambda: not pid_alive(pid), timeout, what="pid %d to exit" % pid)


def run_to_end(args, timeout=15.0, cwd=None):
    return subprocess.run([server_bin()] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)


# ---- plugins ----

def test_builtin_plugins_and_accepted_flags_start(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--plugins", "0:python3,http", "--plugin", "python3", "--need-plugin", "python",
                 "--thunder-lock", "--single-interpreter", "--enable-threads", "--vacuum",
                 "--post-buffering-bufsize", "8192", "--py-autoreload", "0")
    assert get(srv.url).text == "hello"
    assert "not implemented" not in srv.log_text()


def test_unknown_plugin_is_an_error_naming_the_plugins(tmp_path):
    r = run_to_end(["--http-socket", "127.0.0.1:0", "--plugins", "python3,php"])
    assert r.returncode == 1
    assert "plugin 'php'" in r.stderr
    for name in ("python", "http", "notfound"):
        assert name in r.stderr


def test_notfound_plugin_answers_404_without_app(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--need-app=false", "--plugin", "notfound")
    for path in ("/", "/x/y?z=1"):
        r = get(srv.url + path)
        assert r.status_code == 404, r.text
    assert "no python application found" not in srv.log_text()


def test_notfound_plugin_answers_404_outside_the_mounted_apps(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--mount", "/app=%s" % app,
                 "--manage-script-name", "--plugin", "notfound", ready_path="/app/")
    assert get(srv.url + "/app/x").text == "hello"
    assert get(srv.url + "/other").status_code == 404


def test_without_notfound_no_app_is_500(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--need-app=false")
    assert get(srv.url + "/").status_code == 500


# ---- wsgi-accept-buffer ----

def test_wsgi_accept_buffer_sends_buffer_items(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", BUFFER_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--wsgi-accept-buffer")
    r = get(srv.url + "/")
    assert (r.status_code, r.content) == (200, b"abcdefgh")
    r = get(srv.url + "/gen")
    assert (r.status_code, r.content) == (200, b"abcdef")


def test_without_wsgi_accept_buffer_a_bytearray_is_an_error(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", BUFFER_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app)
    assert get(srv.url + "/").status_code == 500
    srv.wait_log(r"must be bytes, not bytearray")


# ---- exit-on-reload ----

def test_exit_on_reload_sighup_stops_with_0(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--exit-on-reload",
                 "--processes", "2")
    srv.signal(signal.SIGHUP)
    assert srv.wait_exit() == 0
    log = srv.log_text()
    assert "exit-on-reload, stopping instead" in log
    assert "re-executing" not in log
    srv.assert_no_orphans()


def test_exit_on_reload_app_reload_stops(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", RELOAD_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--exit-on-reload")
    assert get(srv.url + "/reload").status_code == 200
    assert srv.wait_exit() == 0
    srv.assert_no_orphans()


# ---- daemonize / daemonize2 ----

def test_daemonize_detaches_and_logs_to_the_file(tmp_path, daemons):
    app = write(tmp_path, "app.py", HELLO_APP)
    log, pidfile = tmp_path / "d.log", tmp_path / "pid"
    port = free_port()
    r = run_to_end(["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", app,
                    "--daemonize", log, "--pidfile", pidfile, "--vacuum"], timeout=10)
    assert r.returncode == 0, r.stderr
    pid = read_pid(pidfile)
    daemons.append(pid)
    assert get_ok("http://127.0.0.1:%d/" % port) == "hello"
    assert os.getsid(pid) == pid, "a new session"
    assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
    assert os.readlink("/proc/%d/fd/2" % pid) == str(log)
    text = log.read_text()
    assert "master process started (pid: %d" % pid in text
    assert "GET / => generated" in wait_for_text(log, "GET / => generated")
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert "goodbye to ruwsgi." in log.read_text()
    assert not pidfile.exists(), "vacuum removed the pidfile"


def test_daemonize_with_logto_logs_there(tmp_path, daemons):
    app = write(tmp_path, "app.py", HELLO_APP)
    dlog, logto, pidfile = tmp_path / "d.log", tmp_path / "to.log", tmp_path / "pid"
    port = free_port()
    r = run_to_end(["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", app,
                    "-d", dlog, "--logto", logto, "--pidfile", pidfile], timeout=10)
    assert r.returncode == 0, r.stderr
    pid = read_pid(pidfile)
    daemons.append(pid)
    wait_for_text(logto, "master process started")
    assert not dlog.exists() or dlog.read_text() == ""
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_daemonize_bad_log_path_fails_in_the_foreground(tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    r = run_to_end(["--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                    "--daemonize", tmp_path / "no" / "such" / "dir.log"], timeout=10)
    assert r.returncode == 1
    assert "daemonize" in r.stderr and "cannot open" in r.stderr


def test_daemonize_without_socket_fails_in_the_foreground(tmp_path):
    r = run_to_end(["--daemonize", tmp_path / "d.log"], timeout=10)
    assert r.returncode == 1
    assert "no socket configured" in r.stderr


def test_daemonize2_detaches_after_loading_and_survives_a_reload(tmp_path, daemons):
    app = write(tmp_path, "app.py", "print('importing the app', flush=True)\n" + RELOAD_APP)
    log, pidfile, pidfile2 = tmp_path / "d2.log", tmp_path / "pid", tmp_path / "pid2"
    port = free_port()
    r = run_to_end(["--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", app,
                    "--daemonize2", log, "--pidfile", pidfile, "--pidfile2", pidfile2],
                   timeout=15)
    assert r.returncode == 0, r.stderr
    # Loading happened before detaching: its output reached the terminal.
    assert "importing the app" in r.stdout + r.stderr
    pid = read_pid(pidfile)
    daemons.append(pid)
    assert read_pid(pidfile2) == pid
    assert os.getsid(pid) == pid
    url = "http://127.0.0.1:%d" % port
    assert get_ok(url + "/") == "gen 0"
    text = log.read_text()
    assert "master process started (pid: %d" % pid in text
    assert "importing the app" not in text
    # A reload re-executes the same detached master (it does not detach again).
    os.kill(pid, signal.SIGHUP)
    wait_for_text(log, "reload done, generation 1 ready")
    assert get_ok(url + "/") == "gen 1"
    assert read_pid(pidfile) == pid
    assert "importing the app" in log.read_text(), "the re-executed master logs to the file"
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_daemonize2_returns_once_the_pidfile_holds_the_daemon_or_fails(tmp_path, daemons):
    """The launching command exits only after the detached master wrote its pidfiles (so a
    script reads the daemon's pid right away), and exits 1, saying where the log is, when
    the detached master fails before that."""
    app = write(tmp_path, "app.py", RELOAD_APP)
    for i in range(3):
        log, pidfile = tmp_path / ("ok%d.log" % i), tmp_path / ("ok%d.pid" % i)
        r = run_to_end(["--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                        "--daemonize2", log, "--pidfile", pidfile], timeout=15)
        assert r.returncode == 0, r.stderr
        pid = read_pid(pidfile)
        daemons.append(pid)
        assert os.getsid(pid) == pid                      # the daemon, not the launcher
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    log = tmp_path / "bad.log"
    r = run_to_end(["--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--daemonize2", log,
                    "--pidfile2", tmp_path / "missing" / "pid2"], timeout=15)
    assert r.returncode == 1
    assert "the detached master stopped before it was ready; its log is %s" % log in r.stderr
    assert "cannot write pidfile" in log.read_text()


def get_ok(url, timeout=15.0):
    r = wait_answer(url, timeout)
    assert r.status_code == 200, r.text
    return r.text


def wait_for_text(path, needle, timeout=15.0):
    def found():
        try:
            text = open(path).read()
        except FileNotFoundError:
            return None
        return text if needle in text else None
    return wait_until(found, timeout, what="%r in %s" % (needle, path))


# ---- privileges: pidfile2, master-as-root ----

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")


@needs_root
def test_pidfile2_is_written_after_the_privilege_drop(ruwsgi, world_dir):
    nobody = pwd.getpwnam("nobody")
    app = write(world_dir, "app.py", UID_APP)
    p1, p2 = os.path.join(world_dir, "p1"), os.path.join(world_dir, "p2")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--uid", "nobody",
                 "--pidfile", p1, "--pidfile2", p2, cwd=world_dir)
    assert open(p1).read().strip() == open(p2).read().strip() == str(srv.pid)
    assert os.stat(p1).st_uid == 0
    assert os.stat(p2).st_uid == nobody.pw_uid
    assert get(srv.url).text.split()[0] == str(nobody.pw_uid)


@needs_root
def test_master_as_root_keeps_the_master_root_and_drops_in_children(ruwsgi, world_dir):
    nobody = pwd.getpwnam("nobody")
    app = write(world_dir, "app.py", UID_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--uid", "nobody",
                 "--master-as-root", "--processes", "2", cwd=world_dir)
    uid, ppid = get(srv.url).text.split()
    assert (int(uid), int(ppid)) == (nobody.pw_uid, srv.pid)
    assert os.stat("/proc/%d" % srv.pid).st_uid == 0, "the master is still root"
    for kid in srv.wait_children(2):
        assert os.stat("/proc/%d" % kid).st_uid == nobody.pw_uid
    srv.wait_log(r"master-as-root: the master keeps root")
    # A worker killed is respawned and drops privileges again.
    kid = srv.children()[0]
    os.kill(kid, signal.SIGKILL)
    srv.wait_log(r"Respawned ruwsgi worker")
    wait_until(lambda: all(os.stat("/proc/%d" % k).st_uid == nobody.pw_uid
                           for k in srv.children()) and len(srv.children()) == 2, 10,
               what="respawned worker as nobody")
    assert srv.stop(signal.SIGTERM) == 0


# ---- py-autoreload ----

AUTORELOAD_APP = (
    "import helper_mod\n"
    "import uwsgi\n"
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [('%s %d' % (helper_mod.VALUE, uwsgi.is_a_reload)).encode()]\n"
)


def bump_mtime(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.mark.parametrize("lazy", [False, True], ids=["preload", "lazy-apps"])
def test_py_autoreload_reloads_after_a_module_file_changes(ruwsgi, tmp_path, lazy):
    write(tmp_path, "helper_mod.py", "VALUE = 'one'\n")
    app = write(tmp_path, "app.py", AUTORELOAD_APP)
    args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--pythonpath", tmp_path,
            "--py-autoreload", "1", "--processes", "2"]
    if lazy:
        args.append("--lazy-apps")
    srv = ruwsgi(*args)
    assert get(srv.url).text == "one 0"
    srv.wait_log(r"py-autoreload: watching the loaded modules every 1 s")
    time.sleep(1.2)
    assert "changed" not in srv.log_text(), "nothing changed yet"
    write(tmp_path, "helper_mod.py", "VALUE = 'two'\n")
    bump_mtime(os.path.join(str(tmp_path), "helper_mod.py"))
    srv.wait_log(r"\[py-autoreload\] module helper_mod changed \(.*helper_mod\.py\): "
                 r"reloading the instance", timeout=10)
    srv.wait_log(r"graceful reload requested \(worker 1\)", timeout=10)

    def new_code():
        try:
            text = get(srv.url, timeout=2.0).text
        except requests.RequestException:
            return None
        return text if text.startswith("two") else None
    text = wait_until(new_code, 20, what="the new module version served")
    assert text == ("two 0" if lazy else "two 1")
    # One change, one reload.
    time.sleep(2.5)
    assert srv.log_text().count("[py-autoreload] module") == 1
    assert srv.stop(signal.SIGTERM) == 0


def test_py_autoreload_with_exit_on_reload_stops(ruwsgi, tmp_path):
    write(tmp_path, "helper_mod.py", "VALUE = 'one'\n")
    app = write(tmp_path, "app.py", AUTORELOAD_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--pythonpath", tmp_path,
                 "--py-autoreload", "1", "--exit-on-reload")
    srv.wait_log(r"py-autoreload: watching")
    bump_mtime(app)
    assert srv.wait_exit(timeout=15) == 0
    assert "exit-on-reload, stopping instead" in srv.log_text()


def test_py_auto_reload_ignore_skips_a_module(ruwsgi, tmp_path):
    write(tmp_path, "helper_mod.py", "VALUE = 'one'\n")
    app = write(tmp_path, "app.py", AUTORELOAD_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--pythonpath", tmp_path,
                 "--py-autoreload", "1", "--py-auto-reload-ignore", "helper_mod")
    srv.wait_log(r"py-autoreload: watching")
    bump_mtime(os.path.join(str(tmp_path), "helper_mod.py"))
    time.sleep(2.5)
    assert "changed" not in srv.log_text()
    assert get(srv.url).text == "one 0"


# ---- logdate ----

def test_logdate_prefixes_server_lines_not_request_lines(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--logdate")
    assert get(srv.url).text == "hello"
    srv.wait_log(r"GET / => generated")
    log = srv.log_text()
    started = re.search(r"^(.*)ruwsgi: master process started", log, re.M).group(1)
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - ", started), started
    assert re.search(r"^\[pid: \d+\|app: 0\|req: 1/1\]", log, re.M), "request lines as before"


def test_logdate_with_a_strftime_format(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    ini = write(tmp_path, "app.ini", "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n"
                "log-date = <%%%%F %%%%T>\n" % app)
    srv = ruwsgi("--ini", ini)
    srv.wait_log(r"^<\d{4}-\d\d-\d\d \d\d:\d\d:\d\d> - ruwsgi: master process started")


# ---- attach-daemon ----

def test_attach_daemon_runs_respawns_and_stops_with_the_instance(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    pids = tmp_path / "daemon.pids"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--attach-daemon", "echo $$ >> %s; exec sleep 300" % pids)

    def started(n):
        try:
            lines = pids.read_text().split()
        except FileNotFoundError:
            return None
        return [int(x) for x in lines] if len(lines) >= n else None
    first = wait_until(lambda: started(1), 10, what="the daemon's pid")[0]
    assert first in srv.children(), "a child of the master"
    srv.wait_log(r"spawned ruwsgi daemon 1 \(pid: %d\)" % first)
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: started(2), 10, what="the respawned daemon")[1]
    assert second != first and pid_alive(second)
    srv.wait_log(r"Respawned ruwsgi daemon 1 \(new pid: %d\)" % second)
    assert srv.stop(signal.SIGTERM) == 0
    assert not pid_alive(second)
    srv.wait_log(r"daemon 1 \(pid: %d\) stopped \(signal 15\)" % second)


def test_attach_daemon_is_restarted_on_reload(ruwsgi, tmp_path):
    app = write(tmp_path, "app.py", HELLO_APP)
    pids = tmp_path / "daemon.pids"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--attach-daemon", "echo $$ >> %s; exec sleep 300" % pids)
    wait_until(lambda: pids.exists() and pids.read_text().strip(), 10, what="daemon pid")
    first = int(pids.read_text().split()[0])
    srv.signal(signal.SIGHUP)
    srv.wait_log(r"reload done, generation 1 ready")
    wait_until(lambda: len(pids.read_text().split()) >= 2, 10, what="the new daemon")
    second = int(pids.read_text().split()[1])
    assert not pid_alive(first) and pid_alive(second)
    assert srv.stop(signal.SIGTERM) == 0
