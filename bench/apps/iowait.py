"""Benchmark app for async servers: every request waits 50 ms on a file descriptor (a
timerfd armed for 50 ms: real fd readiness through the server's event loop, no backend
to saturate), then answers a short body. One module, one callable per server style:

  application        uWSGI API, suspend style (ruwsgi --greenlet, uWSGI --ugreen)
  gen_application    uWSGI API, generator style (ruwsgi --async, uWSGI --async)
  gevent_application gevent's hub (gunicorn -k gevent)
  asgi_application   asyncio (granian --interface asgi)
"""
import ctypes
import os

WAIT = float(os.environ.get("IOWAIT_SECONDS", "0.05"))
BODY = b"waited\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]

_libc = ctypes.CDLL(None, use_errno=True)
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def timer_fd(seconds=WAIT):
    """A descriptor that becomes readable `seconds` from now."""
    fd = _libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "timerfd_create")
    whole = int(seconds)
    spec = _Itimerspec(_Timespec(0, 0), _Timespec(whole, int((seconds - whole) * 1e9)))
    if _libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) < 0:
        os.close(fd)
        raise OSError(ctypes.get_errno(), "timerfd_settime")
    return fd


def application(env, start_response):
    import uwsgi
    fd = timer_fd()
    try:
        uwsgi.wait_fd_read(fd, 5)
        uwsgi.suspend()
    finally:
        os.close(fd)
    start_response("200 OK", HEADERS)
    return [BODY]


def gen_application(env, start_response):
    import uwsgi
    fd = timer_fd()
    try:
        start_response("200 OK", HEADERS)
        yield uwsgi.wait_fd_read(fd, 5)
    finally:
        os.close(fd)
    yield BODY


def gevent_application(env, start_response):
    from gevent.socket import wait_read
    fd = timer_fd()
    try:
        wait_read(fd, timeout=5)
    finally:
        os.close(fd)
    start_response("200 OK", HEADERS)
    return [BODY]


async def asgi_application(scope, receive, send):
    import asyncio
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    loop = asyncio.get_running_loop()
    fd = timer_fd()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, 5)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(k.lower().encode(), v.encode()) for k, v in HEADERS]})
    await send({"type": "http.response.body", "body": BODY})
