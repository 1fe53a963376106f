"""A small, bounded, threaded HTTP/1.1 load client for reliability tests.

Each of `connections` threads sends GET requests for `duration` seconds (and at most
`max_requests` in total), in close mode (a new connection per request) or keep-alive mode.

Counted as defined in tests/../http-rules §2:
  ok        2xx responses
  non2xx    complete responses with another status
  errors    a sent request that got no complete response, or a refused/failed connect
  retries   keep-alive only: a reused idle connection closed before any byte of the
            response (a legitimate server close); the request is retried once on a new
            connection and only that retry's outcome counts
"""
import socket
import threading
import time
from collections import Counter

from helpers import read_response


class LoadResult:
    def __init__(self):
        self.ok = 0
        self.non2xx = 0
        self.errors = 0
        self.retries = 0
        self.latencies = []
        self.statuses = Counter()
        self.bodies = Counter()
        self.error_samples = []
        self.error_times = []   # seconds since start
        self.done_times = []
        self.started = time.monotonic()
        self.elapsed = 0.0
        self.lock = threading.Lock()

    @property
    def total(self):
        return self.ok + self.non2xx + self.errors

    @property
    def max_latency(self):
        return max(self.latencies) if self.latencies else 0.0

    @property
    def rps(self):
        return self.total / self.elapsed if self.elapsed else 0.0

    def summary(self):
        return ("total=%d ok=%d non2xx=%d errors=%d retries=%d max_latency=%.3fs rps=%.0f "
                "statuses=%s errors_seen=%s" % (
                    self.total, self.ok, self.non2xx, self.errors, self.retries,
                    self.max_latency, self.rps, dict(self.statuses), self.error_samples[:5]))

    def __repr__(self):
        return "LoadResult(%s)" % self.summary()


class _Conn:
    def __init__(self, addr, timeout):
        self.addr = addr
        self.timeout = timeout
        self.sock = None
        self.used = 0

    def open(self):
        self.close()
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.used = 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None


class _IdleClose(Exception):
    pass


def _one(conn, req, keepalive, timeout):
    """Send one request on conn; returns (status, body). Raises _IdleClose for a reused
    connection closed before any response byte."""
    reused = keepalive and conn.sock is not None and conn.used > 0
    if conn.sock is None:
        conn.open()
    got_any = [False]
    try:
        conn.sock.sendall(req)
        try:
            status, headers, body, nbytes = read_response(conn.sock, timeout=timeout)
        except ConnectionError as e:
            if reused and "after 0 bytes" in str(e):
                raise _IdleClose() from e
            raise
        got_any[0] = True
    except (BrokenPipeError, ConnectionResetError) as e:
        if reused and not got_any[0]:
            raise _IdleClose() from e
        raise
    conn.used += 1
    if not keepalive or headers.get("connection", "").lower() == "close":
        conn.close()
    return status, body


def run_load(addr, path="/", connections=8, duration=10.0, keepalive=False, timeout=10.0,
             max_requests=200000, count_bodies=False, events=None, host="localhost"):
    """Run the load; `events` is an optional list of (t_seconds, callable) fired from a
    separate thread at those offsets. Returns a LoadResult."""
    res = LoadResult()
    stop_at = time.monotonic() + duration
    budget = [max_requests]
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        path, host, "" if keepalive else "Connection: close\r\n")).encode()

    def take():
        with res.lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker():
        conn = _Conn(addr, timeout)
        while time.monotonic() < stop_at and take():
            t0 = time.monotonic()
            try:
                try:
                    status, body = _one(conn, req, keepalive, timeout)
                except _IdleClose:
                    with res.lock:
                        res.retries += 1
                    conn.close()
                    t0 = time.monotonic()
                    status, body = _one(conn, req, keepalive, timeout)
            except (OSError, ConnectionError, ValueError, IndexError) as e:
                conn.close()
                with res.lock:
                    res.errors += 1
                    res.error_times.append(time.monotonic() - res.started)
                    if len(res.error_samples) < 20:
                        res.error_samples.append("%.2fs %r" % (time.monotonic() - res.started, e))
                time.sleep(0.01)  # a refused connect must not spin
                continue
            dt = time.monotonic() - t0
            with res.lock:
                res.latencies.append(dt)
                res.done_times.append(time.monotonic() - res.started)
                res.statuses[status] += 1
                if 200 <= status < 300:
                    res.ok += 1
                else:
                    res.non2xx += 1
                if count_bodies:
                    res.bodies[body] += 1
        conn.close()

    def fire():
        for t, fn in sorted(events or [], key=lambda e: e[0]):
            delay = res.started + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            fn()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    ev = threading.Thread(target=fire, daemon=True) if events else None
    for t in threads:
        t.start()
    if ev:
        ev.start()
    for t in threads:
        t.join(duration + timeout + 5)
    if ev:
        ev.join(duration + timeout + 5)
    res.elapsed = time.monotonic() - res.started
    return res
