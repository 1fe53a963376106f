"""Async mode end to end (`async N`): many requests multiplexed on one worker thread.

Both suspend styles: greenlet (`uwsgi.async_sleep(1); uwsgi.suspend()`, the `greenlet`
engine) and generators (`yield uwsgi.async_sleep(1)`, no engine). 1000 concurrent sleeps
finish in about one second on one worker; a core that spins while suspending does not
starve the others; `wait_fd_read` resumes with the right `ready_fd()` (-1 on timeout); an
HTTP client app in uWSGI's async-example style fetches a page from a local server; a full
pool makes clients wait (and says so in the log), never drops them; wsgi.input reads park
the core; SIGHUP lets requests in flight finish.
"""
import re
import selectors
import signal
import socket
import threading
import time

import pytest

from helpers import APPS, http_request, raw_exchange, wait_until

APP = APPS / "asyncapp.py"


def start(ruwsgi, *extra, engine="greenlet", cores=10, **kw):
    args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--async", str(cores),
            "--listen", "1024", *extra]
    if engine == "greenlet":
        args.append("--greenlet")
    return ruwsgi(*args, site=True, ready_path="/gl/fast" if engine == "greenlet" else "/gen/fast",
                  **kw)


def prefix(engine):
    return "/gl" if engine == "greenlet" else "/gen"


def fan_out(addr, paths, timeout=30.0, body=None):
    """Send one request per path, all at once, each on its own connection (non-blocking
    sockets, one selector); returns ([(status, body) or None], elapsed seconds)."""
    sel = selectors.DefaultSelector()
    results = [None] * len(paths)
    t0 = time.monotonic()
    for i, path in enumerate(paths):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr)
        req = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode()
        sel.register(s, selectors.EVENT_WRITE, {"i": i, "out": req, "in": bytearray()})
    pending = len(paths)
    deadline = t0 + timeout
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=0.2):
            s, st = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    n = s.send(st["out"])
                    st["out"] = st["out"][n:]
                    if not st["out"]:
                        sel.modify(s, selectors.EVENT_READ, st)
                    continue
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                st["in"] += data
                continue
            sel.unregister(s)
            s.close()
            pending -= 1
            raw = bytes(st["in"])
            if raw.startswith(b"HTTP/1.1 "):
                head, _, payload = raw.partition(b"\r\n\r\n")
                status = int(head[9:12])
                if b"transfer-encoding: chunked" in head.lower():
                    payload = dechunk(payload)
                results[st["i"]] = (status, payload)
    elapsed = time.monotonic() - t0
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return results, elapsed


def body_of(r):
    """The body of a RawResult, de-chunked when the response is chunked."""
    if (r.header("Transfer-Encoding") or b"").lower() == b"chunked":
        return dechunk(r.body)
    return r.body


def dechunk(data):
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2:]
    return out


class LineServer:
    """A local TCP server: each connection gets `reply` after `delay` seconds (or nothing,
    with reply=None), then is closed. For /waitfd and /fetch."""

    def __init__(self, reply, delay=0.0):
        self.reply, self.delay = reply, delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.held = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        if self.reply is None:
            self.held.append(c)      # never answers: the client's wait times out
            return
        try:
            c.settimeout(5)
            if self.reply.startswith(b"HTTP/"):
                c.recv(4096)         # the request
            if self.delay:
                self.stop.wait(self.delay)
            c.sendall(self.reply)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def line_server():
    servers = []

    def make(reply, delay=0.0):
        s = LineServer(reply, delay)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.mark.parametrize("engine", ["greenlet", "generator"])
def test_1000_concurrent_sleeps_on_one_worker_take_about_one_second(ruwsgi, engine):
    srv = start(ruwsgi, "--processes", "1", "--disable-logging", engine=engine, cores=1000)
    results, elapsed = fan_out(srv.http.target, ["%s/sleep" % prefix(engine)] * 1000)
    ok = [r for r in results if r and r[0] == 200 and r[1].startswith(b"slept core ")]
    assert len(ok) == 1000, (len(ok), [r for r in results if not r or r[0] != 200][:5])
    assert elapsed < 3.0, elapsed
    # they really ran side by side, on distinct cores
    cores = {r[1] for r in ok}
    assert len(cores) > 500, len(cores)


def test_a_cpu_bound_core_that_suspends_does_not_starve_the_others(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", cores=4)
    spun = {}

    def spin():
        spun["r"] = http_request(srv.http.target, "GET", "/gl/spin?3", timeout=20)

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.3)      # let it start spinning (not a synchronisation: just an offset)
        lat = []
        for _ in range(10):
            t0 = time.monotonic()
            r = http_request(srv.http.target, "GET", "/gl/fast", timeout=10)
            lat.append(time.monotonic() - t0)
            assert r.status == 200 and r.body.startswith(b"fast core "), r
        assert t.is_alive(), "the spinning request was expected to still run"
        assert max(lat) < 0.5, lat
    finally:
        t.join(timeout=20)
    r = spun["r"]
    assert r.status == 200 and r.body.startswith(b"spun "), r


def test_wait_fd_read_resumes_with_ready_fd_and_minus_one_on_timeout(ruwsgi, line_server):
    srv = start(ruwsgi, cores=4)
    talker = line_server(b"hello", delay=0.3)
    silent = line_server(None)
    r = http_request(srv.http.target, "GET", "/gl/waitfd?port=%d&t=5" % talker.port, timeout=10)
    assert r.status == 200, r
    fields = dict(p.split("=", 1) for p in r.body.decode().split())
    assert fields["ready"] == fields["fd"] and int(fields["fd"]) >= 0, fields
    assert fields["data"] == "hello"
    t0 = time.monotonic()
    r = http_request(srv.http.target, "GET", "/gl/waitfd?port=%d&t=1" % silent.port, timeout=10)
    took = time.monotonic() - t0
    assert r.status == 200 and r.body.startswith(b"ready=-1 "), r
    assert 0.9 <= took < 3.0, took


def test_generator_waits_report_through_the_environ(ruwsgi, line_server):
    srv = start(ruwsgi, engine="generator", cores=4)
    talker = line_server(b"hi", delay=0.2)
    silent = line_server(None)
    r = http_request(srv.http.target, "GET", "/gen/waitfd?port=%d&t=5" % talker.port, timeout=10)
    assert r.status == 200, r
    fields = dict(p.split("=", 1) for p in body_of(r).decode().split())
    assert fields["ready"] == fields["fd"], fields
    assert fields["timeout"] == "None" and fields["data"] == "hi", fields
    # as in uWSGI: after a yield, ready_fd() is reset; the environ says what woke the core
    assert fields["api_ready"] == "-1", fields
    r = http_request(srv.http.target, "GET", "/gen/waitfd?port=%d&t=1" % silent.port, timeout=10)
    fields = dict(p.split("=", 1) for p in body_of(r).decode().split())
    assert fields["ready"] == "None" and fields["timeout"] == "True", fields


@pytest.mark.parametrize("engine", ["greenlet", "generator"])
def test_an_async_http_client_app_returns_the_remote_page(ruwsgi, line_server, engine):
    page = b"<html>remote page " + b"x" * 20000 + b"</html>"
    remote = line_server(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + page,
                         delay=0.2)
    srv = start(ruwsgi, engine=engine, cores=20)
    paths = ["%s/fetch?port=%d" % (prefix(engine), remote.port)] * 20
    results, elapsed = fan_out(srv.http.target, paths, timeout=20)
    assert all(r == (200, page) for r in results), [r and (r[0], r[1][:60]) for r in results][:3]
    # 20 fetches each waiting 0.2 s on the remote ran side by side
    assert elapsed < 2.0, elapsed


def test_a_full_core_pool_makes_clients_wait_and_is_logged(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", cores=4)
    results, elapsed = fan_out(srv.http.target, ["/gl/sleep"] * 12, timeout=20)
    assert all(r and r[0] == 200 and r[1].startswith(b"slept core ") for r in results), results
    # 12 one-second sleeps through 4 cores: three waves
    assert 2.8 <= elapsed < 6.0, elapsed
    srv.wait_log(r"worker 1: \[DANGER\] async queue is full !!! \(all 4 async cores are busy",
                 timeout=5)
    assert {r[1][-1:] for r in results} <= {b"0", b"1", b"2", b"3"}


def test_a_body_read_parks_its_core_while_others_are_served(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", cores=4)
    host, port = srv.http.target
    s = socket.create_connection((host, port), timeout=10)
    try:
        s.sendall(b"POST /gl/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                  b"Connection: close\r\n\r\nhello")
        # while that body is incomplete, the worker keeps serving others
        for _ in range(5):
            t0 = time.monotonic()
            r = http_request(srv.http.target, "GET", "/gl/fast", timeout=5)
            assert r.status == 200 and time.monotonic() - t0 < 0.5, r
        s.sendall(b"world")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 ") and b"got 10 bytes" in data, data
    finally:
        s.close()


def test_an_rpc_call_parks_its_core_while_others_are_served(ruwsgi):
    node = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file", APP,
                  site=True, ready_path="/gl/fast")
    srv = start(ruwsgi, "--processes", "1", cores=4)
    host, port = node.uwsgi.target
    out = {}

    def call():
        t0 = time.monotonic()
        out["r"] = http_request(srv.http.target, "GET", "/gl/rpc?node=%s:%d&secs=1.5" % (host, port),
                                timeout=20)
        out["took"] = time.monotonic() - t0

    t = threading.Thread(target=call)
    t.start()
    try:
        time.sleep(0.2)      # an offset so the call is in flight, not a synchronisation
        for _ in range(5):
            t0 = time.monotonic()
            r = http_request(srv.http.target, "GET", "/gl/fast", timeout=5)
            assert r.status == 200 and time.monotonic() - t0 < 0.5, r
        assert t.is_alive(), "the RPC call was expected to still be waiting"
    finally:
        t.join(timeout=20)
    assert out["r"].status == 200 and out["r"].body == b"rpc: slept 1.5", out["r"]
    assert 1.4 <= out["took"] < 5, out["took"]


def test_sighup_lets_async_requests_in_flight_finish(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", "--worker-reload-mercy", "10", cores=50)
    out = {}

    def run():
        out["r"] = fan_out(srv.http.target, ["/gl/sleep"] * 30, timeout=20)

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: started(srv) >= 30, timeout=10, what="30 requests in flight")
    srv.signal(signal.SIGHUP)
    t.join(timeout=20)
    results, elapsed = out["r"]
    assert all(r and r[0] == 200 for r in results), results
    srv.wait_log(r"Respawned ruwsgi worker 1|spawned ruwsgi worker 1", timeout=10, count=2)
    r = http_request(srv.http.target, "GET", "/gl/fast", timeout=10)
    assert r.status == 200, r


def started(srv):
    r = http_request(srv.http.target, "GET", "/gl/started", timeout=5)
    return int(r.body) if r.status == 200 else 0


def test_signal_handlers_run_while_cores_are_parked(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", cores=8)
    out = {}

    def sleepers():
        out["r"] = fan_out(srv.http.target, ["/gl/sleep?2"] * 4, timeout=20)

    t = threading.Thread(target=sleepers)
    t.start()
    try:
        wait_until(lambda: started(srv) >= 4, timeout=10, what="4 parked cores")
        r = http_request(srv.http.target, "GET", "/gl/raise", timeout=5)
        assert r.status == 200, r
        wait_until(lambda: http_request(srv.http.target, "GET", "/gl/signals", timeout=5).body
                   == b"1", timeout=5, what="the handler ran")
        assert t.is_alive(), "the handler was expected to run while the sleepers were parked"
    finally:
        t.join(timeout=20)
    results, _ = out["r"]
    assert all(r and r[0] == 200 for r in results), results


def test_harakiri_deadlines_are_per_core(ruwsgi):
    """A long request on core 0 is killed at its own deadline although other cores keep
    starting (and finishing) requests meanwhile."""
    srv = start(ruwsgi, "--processes", "1", "--harakiri", "2", cores=8)
    out = {}

    def long():
        t0 = time.monotonic()
        out["r"] = http_request(srv.http.target, "GET", "/gl/sleep?30", timeout=20)
        out["took"] = time.monotonic() - t0

    t = threading.Thread(target=long)
    t.start()
    wait_until(lambda: started(srv) >= 1, timeout=5, what="the long request")
    deadline = time.monotonic() + 15
    while t.is_alive() and time.monotonic() < deadline:
        http_request(srv.http.target, "GET", "/gl/sleep?0.2", timeout=5)
    t.join(timeout=20)
    r = out["r"]
    assert r.closed and r.status is None, r
    assert 1.9 <= out["took"] < 2 + 1.6 + 0.5, out["took"]
    srv.wait_log(r"HARAKIRI triggered by worker 1 core 0 !!!", timeout=5)
    assert re.search(r'worker 1 core 0 \(pid: \d+\) was serving "GET /gl/sleep\?30"',
                     srv.log_text()), srv.log_tail()
    srv.wait_log(r"Respawned ruwsgi worker 1", timeout=10)


def test_set_user_harakiri_applies_to_the_calling_core(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", cores=8)
    out = {}

    def sleeper():
        out["r"] = http_request(srv.http.target, "GET", "/gl/sleep?20", timeout=30)

    t = threading.Thread(target=sleeper)
    t.start()
    wait_until(lambda: started(srv) >= 1, timeout=5, what="a request on core 0")
    t0 = time.monotonic()
    r = http_request(srv.http.target, "GET", "/gl/user-harakiri", timeout=20)
    took = time.monotonic() - t0
    assert r.closed and r.status is None and took < 1 + 1.6 + 0.5, (r, took)
    # the deadline was the second request's core, not core 0's
    srv.wait_log(r"HARAKIRI \(user\) triggered by worker 1 core 1 !!!", timeout=5)
    t.join(timeout=30)


def test_the_async_api_outside_async_mode(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APPS / "asyncapi_sync.py")
    r = http_request(srv.http.target, "GET", "/", timeout=10)
    assert r.status == 200, r
    assert r.body == (b"wait_fd_read: OSError unable to fd 0 to the event queue; "
                      b"wait_fd_write: OSError unable to fd -1 to the event queue; "
                      b"suspend: True; sleep: b''; ready_fd: -1"), r.body
    srv.wait_log(r"ASYNC call without async mode !!!", timeout=5)


def test_async_config_errors_are_clear(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--greenlet", ready=False)
    assert srv.wait_exit(timeout=15) != 0
    assert "option 'greenlet' (from command line argument" in srv.log_text()
    assert "needs async mode: add 'async N'" in srv.log_text()
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--async", "8",
                 "--threads", "2", ready=False)
    assert srv.wait_exit(timeout=15) != 0
    assert "cannot be combined with 'threads 2'" in srv.log_text()
