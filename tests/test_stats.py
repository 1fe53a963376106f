"""The stats server (uWSGI's JSON, read by the real uwsgitop), the Prometheus endpoint,
memory-report and process names."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port, http_request, run_binary, start_uwsgi, wait_until

REPO = Path(__file__).resolve().parent.parent
UWSGITOP = REPO / ".venv" / "bin" / "uwsgitop"

APP = """\
import os
import uwsgi

def application(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/set':
        uwsgi.cache_set('k', b'v', 0, 'c1')
    elif path == '/get':
        uwsgi.cache_get('k', 'c1')
    elif path == '/miss':
        uwsgi.cache_get('missing', 'c1')
    elif path == '/title':
        uwsgi.setprocname(environ['QUERY_STRING'])
    elif path == '/boom':
        raise RuntimeError('boom')
    elif path == '/sleep':
        import time
        time.sleep(30)
    elif path == '/env':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [os.environ.get(environ['QUERY_STRING'], 'missing').encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(os.getpid()).encode()]
"""


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "statsapp.py"
    path.write_text(APP)
    return str(path)


def stats_addr(srv, option="stats"):
    m = srv.wait_log(r"stats server enabled on (\S+) \(%s, fd" % re.escape(option))[0]
    addr = m.group(1)
    if addr.startswith("/"):
        return addr
    host, port = addr.rsplit(":", 1)
    return (host, int(port))


def read_all(addr, send=b"", timeout=5.0):
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        if send:
            s.sendall(send)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def get_stats(addr):
    return json.loads(read_all(addr))


def get(srv, path):
    r = http_request(srv.addr, path=path)
    assert r.status == 200, r
    return r


# --------------------------------------------------------------------------- JSON

def test_stats_document_matches_uwsgi_and_counts(ruwsgi, app, tmp_path):
    """The document has real uWSGI's keys at every level (compared with pyuwsgi's stats
    output), and its counters follow the requests served."""
    args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
            "--cache2", "name=c1,items=10"]
    srv = ruwsgi(*args, "--stats", "127.0.0.1:0")
    addr = stats_addr(srv)
    assert addr[0] == "127.0.0.1"
    base = sum(w["requests"] for w in get_stats(addr)["workers"])  # the readiness probes
    for path in ("/set", "/get", "/miss", "/"):
        get(srv, path)
    assert http_request(srv.addr, path="/boom").status == 500
    total = base + 5
    doc = wait_until(lambda: (lambda d: d if sum(w["requests"] for w in d["workers"]) == total
                              else None)(get_stats(addr)), 10, what="the requests in the stats")
    raw = read_all(addr).decode()
    assert raw.startswith('{\n\t"version":"'), raw[:40]

    kids = set(srv.children())
    assert doc["pid"] == srv.pid and doc["uid"] == os.getuid() and doc["gid"] == os.getgid()
    assert doc["cwd"] == os.path.realpath(str(srv.workdir))
    assert {w["pid"] for w in doc["workers"]} == kids
    assert [w["id"] for w in doc["workers"]] == [1, 2]
    assert sum(w["exceptions"] for w in doc["workers"]) == 1
    for w in doc["workers"]:
        assert w["status"] == "idle" and w["accepting"] == 1
        assert w["rss"] > 0 and w["vsz"] >= w["rss"]
        assert w["respawn_count"] == 1 and w["harakiri_count"] == 0
        assert w["last_spawn"] > 0 and len(w["apps"]) == 1 and len(w["cores"]) == 1
        assert w["cores"][0]["requests"] == w["requests"]
        assert w["cores"][0]["in_request"] == 0 and w["cores"][0]["vars"] == []
    assert sum(w["apps"][0]["requests"] for w in doc["workers"]) == total
    assert sum(w["tx"] for w in doc["workers"]) > 0
    (cache,) = doc["caches"]
    assert (cache["name"], cache["items"], cache["hits"], cache["miss"], cache["max_items"]) \
        == ("c1", 1, 1, 1, 10)
    (sock,) = doc["sockets"]
    assert sock["proto"] == "http" and sock["name"] == "127.0.0.1:%d" % srv.port
    assert doc["locks"] == [{"user 0": 0}]

    # Real uWSGI, same options: the same keys at every level.
    port = free_port()
    uw = start_uwsgi(["--master"] + args + ["--stats", "127.0.0.1:%d" % port],
                     tmp_path / "uwsgi")
    try:
        get(uw, "/")
        ref = get_stats(("127.0.0.1", port))
    finally:
        uw.kill()

    def keys(d):
        return set(d)
    assert keys(doc) == keys(ref)
    assert keys(doc["workers"][0]) == keys(ref["workers"][0])
    assert keys(doc["workers"][0]["apps"][0]) == keys(ref["workers"][0]["apps"][0])
    assert keys(doc["workers"][0]["cores"][0]) == keys(ref["workers"][0]["cores"][0])
    assert keys(doc["sockets"][0]) == keys(ref["sockets"][0])
    assert keys(doc["caches"][0]) == keys(ref["caches"][0])
    for k, v in ref.items():
        assert type(doc[k]) is type(v), k
    for k, v in ref["workers"][0].items():
        assert type(doc["workers"][0][k]) is type(v), k
    srv.stop()


def test_stats_http_minified_no_cores_and_metrics_path(ruwsgi, app, tmp_path):
    sock = str(tmp_path / "stats.sock")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--stats", sock,
                 "--stats-http", "--stats-minified", "--stats-no-cores", "--stats-no-metrics")
    assert stats_addr(srv) == sock
    assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
    get(srv, "/")
    reply = read_all(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Content-Type: application/json" in head
    assert b"\n" not in body and b"\t" not in body
    doc = json.loads(body)
    assert "cores" not in doc["workers"][0] and "metrics" not in doc
    reply = read_all(sock, b"GET /metrics HTTP/1.0\r\n\r\n")
    head, body = reply.split(b"\r\n\r\n", 1)
    assert b"Content-Type: text/plain; version=0.0.4" in head
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert "ruwsgi_requests" in names
    srv.stop()
    assert os.path.exists(sock)


# --------------------------------------------------------------------------- Prometheus

def test_prometheus_endpoint(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
                 "--cache2", "name=c1,items=10", "--stats-prometheus", "127.0.0.1:0")
    addr = stats_addr(srv, "stats-prometheus")

    def scrape():
        reply = read_all(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.0 200 OK")
        return {f.name: f for f in text_string_to_metric_families(body.decode())}

    base = scrape()["ruwsgi_requests"].samples[0].value  # the readiness probes
    for path in ("/set", "/get", "/get", "/miss", "/"):
        get(srv, path)
    total = base + 5
    fams = wait_until(lambda: (lambda f: f if f["ruwsgi_requests"].samples[0].value == total
                               else None)(scrape()), 10, what="the requests in the metrics")
    assert fams["ruwsgi_requests"].type == "counter"
    per_worker = {s.labels["worker"]: s.value for s in fams["ruwsgi_worker_requests"].samples}
    assert set(per_worker) == {"1", "2"} and sum(per_worker.values()) == total
    hist = fams["ruwsgi_request_duration_seconds"]
    assert hist.type == "histogram"
    buckets = [s for s in hist.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == total
    values = [b.value for b in buckets]
    assert values == sorted(values)
    count = [s for s in hist.samples if s.name.endswith("_count")][0]
    assert count.value == total
    status = [s for s in fams["ruwsgi_worker_status"].samples if s.value == 1]
    assert sorted((s.labels["worker"], s.labels["status"]) for s in status) \
        == [("1", "idle"), ("2", "idle")]
    for name in ("ruwsgi_worker_respawns", "ruwsgi_worker_harakiri"):
        assert fams[name].type == "counter"
        assert [s.value for s in fams[name].samples] == [0, 0]
    by = lambda name: {s.labels["cache"]: s.value for s in fams[name].samples}  # noqa: E731
    assert by("ruwsgi_cache_hits") == {"c1": 2} and by("ruwsgi_cache_misses") == {"c1": 1}
    assert by("ruwsgi_cache_items") == {"c1": 1} and by("ruwsgi_cache_full") == {"c1": 0}
    (lq,) = fams["ruwsgi_listen_queue"].samples
    assert lq.labels["socket"] == "127.0.0.1:%d" % srv.port and lq.value == 0
    assert read_all(addr, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 404")
    srv.stop()


def test_harakiri_is_counted(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--harakiri", "1",
                 "--stats", "127.0.0.1:0", "--stats-http")
    addr = stats_addr(srv)
    try:
        http_request(srv.addr, path="/sleep", timeout=10)
    except OSError:
        pass
    srv.wait_log(r"killed by harakiri")

    def counted():
        body = read_all(addr, b"GET / HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1]
        w = json.loads(body)["workers"][0]
        return w if w["harakiri_count"] == 1 and w["pid"] > 0 else None
    w = wait_until(counted, 10, what="harakiri_count 1")
    assert w["respawn_count"] == 2
    metrics = read_all(addr, b"GET /metrics HTTP/1.0\r\n\r\n").decode()
    assert 'ruwsgi_worker_harakiri_total{worker="1"} 1\n' in metrics
    srv.stop()


def test_stats_verbose_shows_busy_cores_requests(ruwsgi, app):
    """Only with stats-verbose does a busy core's `vars` show its request (method, URI,
    client address); an idle core's stays empty."""
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--threads", "2",
                 "--stats", "127.0.0.1:0", "--stats-verbose")
    addr = stats_addr(srv)
    with socket.create_connection(srv.addr, timeout=5) as c:
        c.sendall(b"GET /sleep?who=me HTTP/1.1\r\nHost: x\r\n\r\n")

        def busy():
            cores = json.loads(read_all(addr))["workers"][0]["cores"]
            return [c for c in cores if c["in_request"]] or None
        cores = wait_until(busy, 10, what="a busy core in the stats")
        assert cores[0]["vars"] == ["REQUEST_METHOD=GET", "REQUEST_URI=/sleep?who=me",
                                    "REMOTE_ADDR=127.0.0.1"], cores
        idle = [c for c in json.loads(read_all(addr))["workers"][0]["cores"]
                if not c["in_request"]]
        assert idle and all(c["vars"] == [] for c in idle)
    srv.stop()


# --------------------------------------------------------------------------- uwsgitop

def test_real_uwsgitop_shows_the_workers(ruwsgi, app):
    """The real uwsgitop (curses), run under a pseudo-terminal, draws its worker table from
    ruwsgi's stats; 'q' quits it."""
    import pty
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
                 "--stats", "127.0.0.1:0")
    host, port = stats_addr(srv)
    get(srv, "/")
    pids = sorted(srv.wait_children(2))
    pid, fd = pty.fork()
    if pid == 0:  # the child: a 50x200 terminal, then uwsgitop
        import fcntl
        import struct
        import termios
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        os.environ["TERM"] = "xterm"
        os.execv(sys.executable, [sys.executable, str(UWSGITOP), "%s:%d" % (host, port)])
    out = b""
    try:
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", " ",
                          out.decode("utf-8", "replace"))
            if "WID" in text and all(str(p) in text for p in pids) and "idle" in text:
                break
        assert "uwsgi-2.1.0-ruwsgi" in text, text[-2000:]
        assert "WID" in text and "idle" in text, text[-2000:]
        for p in pids:
            assert str(p) in text, (p, text[-2000:])
        os.write(fd, b"q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    pass
        else:
            raise AssertionError("uwsgitop did not quit on 'q'")
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out[-2000:]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    srv.stop()


# --------------------------------------------------------------------------- robustness

def test_hostile_stats_clients_do_not_stall_the_master(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--stats", ":0",
                 "--stats-http", "--threads", "2")
    addr = stats_addr(srv)
    srv.wait_log(r'WARNING: stats ":0" has no host: bound to 127.0.0.1 only')
    opened = time.monotonic()
    silent = [socket.create_connection(addr) for _ in range(10)]
    t0 = time.monotonic()
    assert read_all(addr, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
    reply = read_all(addr, b"GET / HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200") and time.monotonic() - t0 < 2
    # A client sending an endless head is cut off.
    with socket.create_connection(addr) as s:
        s.settimeout(5)
        s.sendall(b"GET /" + b"a" * 9000)
        assert s.recv(100).startswith(b"HTTP/1.0 400")
    # The master goes on supervising: a killed worker is respawned.
    (kid,) = srv.wait_children(1)
    os.kill(kid, signal.SIGKILL)
    srv.wait_log(r"DAMN ! worker 1 .* trying respawn")
    get(srv, "/")
    # Silent connections are closed after the connection timeout.
    silent[0].settimeout(10)
    assert silent[0].recv(10) == b""
    assert time.monotonic() - opened >= 4.5, "closed before the 5 s connection timeout"
    for s in silent:
        s.close()
    doc = json.loads(read_all(addr, b"GET / HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1])
    (w,) = doc["workers"]
    assert w["respawn_count"] == 2
    assert [c["id"] for c in w["cores"]] == [0, 1]
    assert sum(c["requests"] for c in w["cores"]) == w["requests"]
    srv.stop()


def test_stats_off_by_default_and_bad_addresses(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app)
    assert "stats server" not in srv.log_text()
    srv.stop()
    r = run_binary(["--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                    "--stats", "127.0.0.1:99999"])
    assert r.returncode == 1 and "invalid stats address" in r.stdout + r.stderr, r
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_binary(["--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                        "--stats-prometheus", "127.0.0.1:%d" % port])
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "cannot bind stats-prometheus" in out and "in use" in out, out


# --------------------------------------------------------------------------- memory-report

def test_stats_token(ruwsgi, app):
    """With stats-token, the raw socket answers a client whose first line is the token and
    closes on anyone else; HTTP endpoints want `Authorization: Bearer TOKEN`, else 401."""
    raw = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--stats", "127.0.0.1:0", "--stats-token", "s3cret", name="raw")
    addr = stats_addr(raw)
    assert json.loads(read_all(addr, send=b"s3cret\n"))["workers"]
    assert read_all(addr, send=b"guess\n") == b""
    # No line: the server closes when its 5 s connection timeout runs out; wait past it.
    assert read_all(addr, send=b"s3cre", timeout=15.0) == b""
    raw.wait_log(r"a client without the stats-token: closed")
    port = free_port()
    web = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--stats",
                 "127.0.0.1:0", "--stats-http", "--stats-token", "s3cret",
                 "--stats-prometheus", "127.0.0.1:%d" % port, name="web")
    addr = stats_addr(web)
    for target, path in ((addr, "/"), (addr, "/metrics"), (("127.0.0.1", port), "/metrics")):
        head = "GET %s HTTP/1.1\r\nHost: x\r\n" % path
        denied = read_all(target, send=(head + "\r\n").encode())
        assert denied.startswith(b"HTTP/1.0 401 "), denied[:40]
        wrong = read_all(target, send=(head + "Authorization: Bearer nope\r\n\r\n").encode())
        assert wrong.startswith(b"HTTP/1.0 401 "), wrong[:40]
        ok = read_all(target, send=(head + "Authorization: Bearer s3cret\r\n\r\n").encode())
        assert ok.startswith(b"HTTP/1.0 200 OK"), ok[:40]
    web.wait_log(r"a request without the stats-token: 401")


def test_memory_report(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--memory-report")
    get(srv, "/")
    m = srv.wait_log(r"^\{address space usage: (\d+) bytes/(\d+)MB\} "
                     r"\{rss usage: (\d+) bytes/(\d+)MB\} \[pid: \d+\|app: 0\|req: 1/1\] ")[0]
    vsz, vsz_mb, rss, rss_mb = (int(x) for x in m.groups())
    assert rss > 0 and vsz >= rss and vsz_mb == vsz >> 20 and rss_mb == rss >> 20
    srv.stop()


# --------------------------------------------------------------------------- process names

def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().rstrip(b"\0").decode()


def comm(pid):
    with open("/proc/%d/comm" % pid) as f:
        return f.read().rstrip("\n")


def ps_args(pid):
    out = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True,
                         text=True, timeout=10).stdout
    return out.strip()


def test_auto_procname_titles_like_uwsgi(ruwsgi, app, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
                 "--mules", "1", "--spooler", spool, "--auto-procname")
    kids = srv.wait_children(4)
    assert cmdline(srv.pid) == "uWSGI master" and ps_args(srv.pid) == "uWSGI master"
    assert comm(srv.pid) == "uWSGI master"
    titles = wait_until(lambda: (lambda t: t if len(t) == 4 and all(x.startswith("uWSGI")
                                                                    for x in t) else None)(
        sorted(cmdline(p) for p in kids)), 10, what="children titled")
    assert titles == ["uWSGI mule 1", "uWSGI spooler", "uWSGI worker 1", "uWSGI worker 2"]
    for p in kids:
        assert ps_args(p) == cmdline(p)
        assert comm(p) == cmdline(p)[:15]
    srv.stop()


def test_procname_options_and_setprocname(ruwsgi, app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--procname-prefix-spaced", "shop", "--procname-append", " [eu]",
                 "--procname-master", "boss", "--procname", "web")
    (kid,) = srv.wait_children(1)
    assert cmdline(srv.pid) == "shop boss [eu]"
    assert cmdline(kid) == "shop web [eu]"
    pid = int(get(srv, "/title?orders").body)  # one worker: the probe's too
    assert pid == kid and cmdline(kid) == "shop orders [eu]" and comm(kid) == "shop orders [eu"
    srv.stop()
    # A title longer than the command line takes the environment's room, as with uWSGI;
    # the environment itself is intact.
    long = "m" * 400
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--procname-master", long,
                 "--auto-procname", env={"RUWSGI_TEST_VALUE": "kept"})
    assert cmdline(srv.pid) == long and ps_args(srv.pid) == long
    (kid,) = srv.wait_children(1)
    assert cmdline(kid) == "uWSGI worker 1"
    assert get(srv, "/env?RUWSGI_TEST_VALUE").body == b"kept"
    srv.stop()
    # Without any naming option, ps shows the command line (the children are forks).
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app)
    (kid,) = srv.wait_children(1)
    for p in (srv.pid, kid):
        assert cmdline(p).split("\0")[1:3] == ["--http-socket", "127.0.0.1:0"]
        assert comm(p) == "ruwsgi"
    srv.stop()
