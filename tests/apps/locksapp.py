"""User locks test app."""
import json
import os
import time
import traceback

import uwsgi
from uwsgidecorators import lock as locked


@locked
def decorated_section():
    # uwsgidecorators' @lock takes user lock 0 around the call
    return uwsgi.is_locked(0)


def expect(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc.__name__))


def checks():
    top = int(uwsgi.opt.get("locks", b"0"))
    for n in range(top + 1):
        assert uwsgi.is_locked(n) is False
        assert uwsgi.lock(n) is None
        assert uwsgi.is_locked(n) is True
        assert uwsgi.unlock(n) is None
        assert uwsgi.is_locked(n) is False
    assert expect(ValueError, uwsgi.lock, top + 1) == "Invalid lock number"
    assert expect(ValueError, uwsgi.lock, -1) == "Invalid lock number"
    assert expect(ValueError, uwsgi.unlock, top + 1) == "Invalid lock number"
    assert expect(ValueError, uwsgi.is_locked, -1) == "Invalid lock number"
    expect(TypeError, uwsgi.lock, "0")
    uwsgi.lock()
    msg = expect(RuntimeError, uwsgi.lock, 0)
    assert "already held by this thread" in msg, msg
    uwsgi.unlock()
    assert uwsgi.unlock() is None          # not held: nothing happens
    assert decorated_section() is True
    assert uwsgi.is_locked(0) is False
    return b"ok"


def application(env, start_response):
    path = env["PATH_INFO"]
    qs = env.get("QUERY_STRING", "")
    try:
        if path == "/check":
            body = checks()
        elif path == "/critical":
            n = int(qs or 0)
            uwsgi.lock(n)
            try:
                start = time.monotonic()
                time.sleep(0.2)
                end = time.monotonic()
            finally:
                uwsgi.unlock(n)
            body = json.dumps([uwsgi.worker_id(), start, end]).encode()
        elif path == "/hold":
            # take lock N and never give it back (the test kills this worker)
            uwsgi.lock(int(qs))
            with open(env["HTTP_X_PIDFILE"], "w") as f:
                f.write(str(os.getpid()))
            time.sleep(60)
            body = b"unreachable"
        elif path == "/take":
            n = int(qs)
            uwsgi.lock(n)
            uwsgi.unlock(n)
            body = str(os.getpid()).encode()
        else:
            body = b"ok"
    except Exception:
        body = traceback.format_exc().encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
