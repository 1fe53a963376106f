"""Worker hardening: uwsgi modifier dispatch, empty packets, many listeners, running out of
file descriptors, limit-post on chunked bodies, and memory given back after a flood.

Every wait is bounded by a deadline and every load loop by a count and a time budget.
"""
import os
import resource
import socket
import struct
import time

import pytest

from helpers import (
    APPS, ServerProcess, connect, http_request, local_non_loopback_ip, raw_exchange, server_bin,
    uwsgi_exchange, uwsgi_packet, wait_until,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
FAULT_APP = APPS / "fault.py"

# An app that reads the whole request body and answers 200 whatever happened; /strict lets
# the read error escape instead.
BODY_APP = '''
def application(environ, start_response):
    inp = environ["wsgi.input"]
    n, err = 0, ""
    try:
        while True:
            block = inp.read(4096)
            if not block:
                break
            n += len(block)
    except Exception as e:
        if environ.get("PATH_INFO") == "/strict":
            raise
        err = type(e).__name__
    body = ("read %d %s" % (n, err)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


# --------------------------------------------------------------------------- helpers

def cpu_seconds(pids):
    """utime + stime of `pids` (seconds), from /proc/PID/stat; vanished pids count 0."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return 0


def open_half_sent(target, count, budget, connect_timeout=2.0):
    """Open up to `count` connections that each send only a request line (no end of head).
    Stops early when `budget` seconds are spent. Returns the open sockets."""
    socks = []
    deadline = time.monotonic() + budget
    while len(socks) < count and time.monotonic() < deadline:
        try:
            s = socket.create_connection(target, timeout=connect_timeout)
            s.sendall(b"GET / HTTP/1.1\r\n")
        except OSError:
            continue
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


class NofileLimit:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); restore on exit."""

    def __init__(self, want):
        self.want = want

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = self.old
        new = self.want if hard == resource.RLIM_INFINITY else min(self.want, hard)
        if new < self.want:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, self.want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new), hard))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_NOFILE, self.old)


def assert_uwsgi_alive(srv, target):
    r = uwsgi_exchange(target, "/")
    assert r.status == 200 and r.body == b"OK", (r, srv.log_tail())


@pytest.fixture(scope="module")
def usrv(tmp_path_factory):
    from conftest import Factory
    f = Factory(tmp_path_factory.mktemp("hardening_uwsgi"))
    srv = f("--socket", "127.0.0.1:0", "--wsgi-file", FAULT_APP, "--master", "--processes", "1")
    srv.start_workers = set(srv.wait_children(1))
    yield srv
    try:
        assert "DAMN" not in srv.log_text(), srv.log_tail()
        assert set(srv.children()) == srv.start_workers, "the worker was restarted"
    finally:
        f.cleanup()


# --------------------------------------------------------------------------- uwsgi dispatch

@pytest.mark.parametrize("modifier1", [0, 30], ids=["wsgi", "wsgi-path-info"])
def test_zero_length_uwsgi_packet_closed_without_reply(usrv, modifier1):
    start = usrv.log_len()
    r = raw_exchange(usrv.uwsgi.target, struct.pack("<BHB", modifier1, 0, 0), timeout=5)
    assert r.closed and r.data == b"", r
    usrv.wait_log(r"empty uwsgi packet \(modifier1 %d, no vars\) from 127\.0\.0\.1:\d+; closing"
                  % modifier1, timeout=5, start=start)
    assert_uwsgi_alive(usrv, usrv.uwsgi.target)


@pytest.mark.parametrize("body", [b"", b"ignored payload"], ids=["bare", "payload"])
def test_signal_packets_from_a_trusted_peer_are_queued(usrv, body):
    """A 110 packet (raise signal 17) from a trusted peer is handed to the master and
    answered (255, 0, 1); a payload is ignored. Nothing registered signal 17, so the master
    logs that it dropped it; the worker keeps serving."""
    start = usrv.log_len()
    pkt = struct.pack("<BHB", 110, len(body), 17) + body
    r = raw_exchange(usrv.uwsgi.target, pkt, timeout=5, shutdown_write=True)
    assert r.data == b"\xff\x00\x00\x01", r
    usrv.wait_log(r"signal 17 from worker 1 is not registered: dropped", timeout=5, start=start)
    assert "unavailable modifier" not in usrv.log_text()[start:]
    assert_uwsgi_alive(usrv, usrv.uwsgi.target)


@pytest.mark.parametrize("modifier1", [5, 72, 100, 101, 224, 255])
def test_unregistered_modifiers_unavailable(usrv, modifier1):
    start = usrv.log_len()
    pkt = uwsgi_packet([("PATH_INFO", "/")], modifier1=modifier1)
    r = raw_exchange(usrv.uwsgi.target, pkt, timeout=5)
    assert r.closed and r.data == b"", r
    usrv.wait_log(r"^-- unavailable modifier requested: %d \(from 127\.0\.0\.1:\d+\) --$"
                  % modifier1, timeout=5, start=start)
    assert_uwsgi_alive(usrv, usrv.uwsgi.target)


def test_subsystem_packets_from_untrusted_peer_refused(ruwsgi):
    ip = local_non_loopback_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address to connect from")
    srv = ruwsgi("--socket", "0.0.0.0:0", "--wsgi-file", FAULT_APP, "--master",
                 "--processes", "1")
    target = (ip, srv.uwsgi.port)
    for modifier1, name in ((110, "signal"), (111, "cache"), (173, "RPC")):
        start = srv.log_len()
        r = raw_exchange(target, struct.pack("<BHB", modifier1, 3, 0) + b"key", timeout=5)
        assert r.closed and r.data == b"", r
        srv.wait_log(r"refused %s packet \(modifier1 %d\) from untrusted peer %s:\d+; closing"
                     % (name, modifier1, ip.replace(".", r"\.")), timeout=5, start=start)
        assert "unavailable modifier" not in srv.log_text()[start:]
    # A normal request from the same peer is still served.
    assert_uwsgi_alive(srv, target)


# --------------------------------------------------------------------------- listeners

def test_more_than_64_listeners_all_accept(ruwsgi):
    n = 70
    args = []
    for _ in range(n):
        args += ["--http-socket", "127.0.0.1:0"]
    # wait_ready probes every listener once: listener 64 used to alias onto listener 0.
    srv = ruwsgi(*args, "--wsgi-file", FAULT_APP, "--master", "--processes", "1",
                 timeout=60)
    assert len(srv.listeners) == n
    for lst in srv.listeners[60:] + srv.listeners[:2]:
        r = http_request(lst.target, "GET", "/pid", timeout=5)
        assert r.status == 200, (lst, r)


# --------------------------------------------------------------------------- fd exhaustion

def test_accept_pauses_when_out_of_file_descriptors(ruwsgi, tmp_path):
    if not os.path.exists("/usr/bin/prlimit"):
        pytest.skip("prlimit is not installed")
    srv = ServerProcess(
        ["--nofile=64:64", server_bin(), "--http-socket", "127.0.0.1:0", "--listen", "512",
         "--wsgi-file", FAULT_APP, "--master", "--processes", "2"],
        tmp_path / "lowfd", bin="/usr/bin/prlimit", name="lowfd")
    ruwsgi.servers.append(srv)
    srv.wait_ready(timeout=30)
    workers = srv.wait_children(2)
    socks = []
    try:
        socks = open_half_sent(srv.http.target, 200, budget=20)
        assert len(socks) >= 150, "only %d connections opened" % len(socks)
        srv.wait_log(r"Too many open files", timeout=10)
        # Let the first pauses pass, then measure a steady stretch.
        time.sleep(0.5)
        pids = [srv.pid] + workers
        cpu0, log0, t0 = cpu_seconds(pids), srv.log_path.stat().st_size, time.monotonic()
        time.sleep(3.0)
        cpu1, log1, t1 = cpu_seconds(pids), srv.log_path.stat().st_size, time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        assert share < 0.30, "server used %.0f%% of a core while out of fds; log:\n%s" % (
            share * 100, srv.log_tail(20))
        assert log1 - log0 < 100_000, "log grew %d bytes in %.1fs" % (log1 - log0, t1 - t0)
        text = srv.log_text()
        assert "pausing accepts for" in text, srv.log_tail(20)
        assert text.count("Too many open files") < 200, srv.log_tail(20)
    finally:
        close_all(socks)
    # Connections closed: the workers get their fds back and accept again by themselves.
    def served():
        try:
            return http_request(srv.http.target, "GET", "/", timeout=2).status == 200
        except OSError:
            return False
    wait_until(served, timeout=15, interval=0.1, what="a request served after the fd drought")
    for _ in range(10):
        assert http_request(srv.http.target, "GET", "/", timeout=5).status == 200
    assert set(srv.children()) == set(workers), "workers were restarted"
    assert srv.stop() == 0


# --------------------------------------------------------------------------- limit-post

@pytest.fixture
def body_server(ruwsgi, tmp_path):
    app = tmp_path / "body_app.py"
    app.write_text(BODY_APP)
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--master",
                  "--processes", "1", "--limit-post", "1024", "--socket-timeout", "10")


def chunked_head(path="/"):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % path).encode()


def chunks(sizes):
    out = b""
    for n in sizes:
        out += b"%x\r\n" % n + b"c" * n + b"\r\n"
    return out + b"0\r\n\r\n"


def test_chunked_body_within_limit_read_whole(body_server):
    r = raw_exchange(body_server.http.target, chunked_head() + chunks([512, 512]), timeout=5)
    assert r.status == 200 and r.body == b"read 1024 ", r


@pytest.mark.parametrize("path", ["/", "/strict"], ids=["app-catches", "app-raises"])
def test_chunked_body_over_limit_gets_413_and_close(body_server, path):
    start = body_server.log_len()
    r = raw_exchange(body_server.http.target, chunked_head(path) + chunks([512] * 8), timeout=5)
    assert r.status == 413 and r.closed, r
    assert r.statuses == [413], r
    assert r.header("Connection") == b"close", r
    body_server.wait_log(r"rejected request from 127\.0\.0\.1:\d+: request body larger than "
                         r"limit-post -> 413", timeout=5, start=start)
    assert http_request(body_server.http.target, "GET", "/").status == 200


def test_huge_chunk_size_refused_at_once(body_server):
    s = connect(body_server.http.target, timeout=5)
    try:
        t0 = time.monotonic()
        # One chunk header announcing 2^64-1 bytes, then silence (the socket stays open).
        s.sendall(chunked_head() + b"FFFFFFFFFFFFFFFF\r\n")
        data = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            data += got
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert elapsed < 2.0, "413 took %.1fs (socket-timeout is 10s)" % elapsed
    assert http_request(body_server.http.target, "GET", "/").status == 200


def test_content_length_over_limit_still_413(body_server):
    r = raw_exchange(body_server.http.target,
                     b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", timeout=5)
    assert r.status == 413 and r.closed, r


# --------------------------------------------------------------------------- memory

def test_idle_worker_gives_memory_back_after_flood(ruwsgi):
    flood = 3000
    with NofileLimit(flood + 1024):
        srv = ruwsgi("--http-socket", "127.0.0.1:0", "--listen", "4096",
                     "--wsgi-file", FAULT_APP, "--master", "--processes", "1")
        worker = srv.wait_children(1)[0]
        for _ in range(50):
            assert http_request(srv.http.target, "GET", "/", timeout=5).status == 200
        idle = rss_kb(worker)
        base_fds = fd_count(worker)
        socks = []
        try:
            socks = open_half_sent(srv.http.target, flood, budget=40)
            assert len(socks) >= flood * 0.9, "only %d connections opened" % len(socks)
            wait_until(lambda: fd_count(worker) >= base_fds + len(socks) - 10, timeout=20,
                       what="the worker to hold the flood's connections")
            peak = rss_kb(worker)
        finally:
            close_all(socks)
        # The flood must have cost something, or the test proves nothing.
        assert peak - idle > 15 * 1024, "peak RSS %d KiB vs idle %d KiB" % (peak, idle)
        wait_until(lambda: fd_count(worker) <= base_fds + 5, timeout=20,
                   what="the worker to close the flood's connections")
        try:
            wait_until(lambda: rss_kb(worker) < idle + 10 * 1024, timeout=10, interval=0.2,
                       what="RSS back near idle")
        except AssertionError:
            raise AssertionError("worker RSS %d KiB after the flood (idle %d, peak %d)"
                                 % (rss_kb(worker), idle, peak))
        assert http_request(srv.http.target, "GET", "/", timeout=5).status == 200
        assert srv.stop() == 0
