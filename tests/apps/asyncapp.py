"""Async-mode test app: the same paths in the suspend style (greenlet: record a wait, then
`uwsgi.suspend()`) and the generator style (`yield` the wait), chosen by the path prefix
`/gl/` or `/gen/`.

  /X/sleep[?secs]       async_sleep(secs, default 1), then "slept core N"
  /X/fast               answers at once
  /gl/started           how many /gl/sleep requests began in this worker
  /gl/user-harakiri     set_user_harakiri(1), then park for 20 s
  /gl/raise, /gl/signals  raise uWSGI signal 21 (to the workers); how many this worker ran
  /X/spin?secs          CPU-bound for `secs` seconds, suspending after every slice
  /X/waitfd?port&t      connect to 127.0.0.1:port, wait (timeout t) for it to be readable;
                        "ready=R fd=F data=D" (R is -1 on timeout)
  /X/fetch?port         an HTTP client built on async_connect / wait_fd_write / send /
                        wait_fd_read / recv (uWSGI's async examples); the remote page
  /X/echo               reads wsgi.input whole; "got N bytes"
  /gl/rpc?node&secs     uwsgi.rpc(node, "slow", secs): the node's `slow` blocks secs seconds
"""
import time

import uwsgi


def slow(secs=b"1"):
    """RPC function (served by a sync node): blocks that long, then answers."""
    time.sleep(float(secs))
    return b"slept " + secs


uwsgi.register_rpc("slow", slow)

SIGNALS = [0]


def on_signal(num):
    """Run by the worker's loop between cores."""
    SIGNALS[0] += 1


uwsgi.register_signal(21, "workers", on_signal)


def _qs(env):
    return env.get("QUERY_STRING", "")


def _args(env):
    out = {}
    for part in _qs(env).split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def _text(sr, body):
    sr("200 OK", [("Content-Type", "text/plain")])
    return [body.encode() if isinstance(body, str) else body]


def application(env, sr):
    path = env["PATH_INFO"]
    if path.startswith("/gen/"):
        return generator_app(env, sr, path[4:])
    return suspend_app(env, sr, path[3:] if path.startswith("/gl/") else path)


# ---- the suspend style (greenlet) ----

STARTED = [0]


def suspend_app(env, sr, path):
    core = env.get("uwsgi.core", -1)
    if path == "/started":
        return _text(sr, str(STARTED[0]))
    if path == "/user-harakiri":
        # this core's own deadline, then a long wait parked on a timer
        uwsgi.set_user_harakiri(1)
        uwsgi.async_sleep(20)
        uwsgi.suspend()
        return _text(sr, "survived")
    if path == "/signals":
        return _text(sr, str(SIGNALS[0]))
    if path == "/raise":
        uwsgi.signal(21)
        return _text(sr, "raised")
    if path == "/sleep":
        STARTED[0] += 1
        uwsgi.async_sleep(float(_qs(env) or "1"))
        uwsgi.suspend()
        return _text(sr, "slept core %d" % core)
    if path == "/fast":
        return _text(sr, "fast core %d" % core)
    if path == "/spin":
        secs = float(_qs(env) or "2")
        end = time.monotonic() + secs
        slices = 0
        while time.monotonic() < end:
            x = 0
            for i in range(2000):
                x += i
            slices += 1
            uwsgi.suspend()
        return _text(sr, "spun %d slices" % slices)
    if path == "/waitfd":
        a = _args(env)
        fd = uwsgi.connect("127.0.0.1:%s" % a["port"])
        uwsgi.wait_fd_read(fd, int(a.get("t", "5")))
        uwsgi.suspend()
        ready = uwsgi.ready_fd()
        data = uwsgi.recv(fd) if ready == fd else b""
        uwsgi.close(fd)
        return _text(sr, "ready=%d fd=%d data=%s" % (ready, fd, (data or b"").decode()))
    if path == "/fetch":
        port = _args(env)["port"]
        fd = uwsgi.async_connect("127.0.0.1:%s" % port)
        uwsgi.wait_fd_write(fd, 5)
        uwsgi.suspend()
        if not uwsgi.is_connected(fd):
            uwsgi.close(fd)
            return _text(sr, "unable to connect")
        uwsgi.send(fd, b"GET /page HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while True:
            uwsgi.wait_fd_read(fd, 5)
            uwsgi.suspend()
            if uwsgi.ready_fd() != fd:
                break
            buf = uwsgi.recv(fd)
            if not buf:
                break
            chunks.append(buf)
        uwsgi.close(fd)
        return _text(sr, b"".join(chunks).split(b"\r\n\r\n", 1)[-1])
    if path == "/rpc":
        a = _args(env)
        got = uwsgi.rpc(a["node"], b"slow", a.get("secs", "1").encode())
        return _text(sr, b"rpc: " + (got or b"None"))
    if path == "/echo":
        body = env["wsgi.input"].read()
        return _text(sr, "got %d bytes core %d" % (len(body), core))
    if path == "/api":
        return _text(sr, "ready=%d suspend=%r sleep=%r" % (
            uwsgi.ready_fd(), uwsgi.suspend(), uwsgi.async_sleep(0)))
    sr("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path\n"]


# ---- the generator style (no engine needed) ----

def generator_app(env, sr, path):
    core = env.get("uwsgi.core", -1)
    sr("200 OK", [("Content-Type", "text/plain")])
    if path == "/sleep":
        yield uwsgi.async_sleep(1)
        yield ("slept core %d" % core).encode()
        return
    if path == "/fast":
        yield ("fast core %d" % core).encode()
        return
    if path == "/waitfd":
        a = _args(env)
        fd = uwsgi.connect("127.0.0.1:%s" % a["port"])
        yield env["x-wsgiorg.fdevent.readable"](fd, int(a.get("t", "5")))
        ready = env["uwsgi.ready_fd"]
        timed_out = env["x-wsgiorg.fdevent.timeout"]
        data = uwsgi.recv(fd) if ready == fd else b""
        uwsgi.close(fd)
        yield ("ready=%s fd=%d timeout=%r data=%s api_ready=%d" % (
            ready, fd, timed_out, (data or b"").decode(), uwsgi.ready_fd())).encode()
        return
    if path == "/fetch":
        port = _args(env)["port"]
        fd = uwsgi.async_connect("127.0.0.1:%s" % port)
        yield uwsgi.wait_fd_write(fd, 5)
        if env["x-wsgiorg.fdevent.timeout"] or not uwsgi.is_connected(fd):
            uwsgi.close(fd)
            yield b"unable to connect"
            return
        uwsgi.send(fd, b"GET /page HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        chunks = []
        while True:
            yield uwsgi.wait_fd_read(fd, 5)
            if env["x-wsgiorg.fdevent.timeout"]:
                break
            buf = uwsgi.recv(fd)
            if not buf:
                break
            chunks.append(buf)
        uwsgi.close(fd)
        yield b"".join(chunks).split(b"\r\n\r\n", 1)[-1]
        return
    yield b"no such path\n"
