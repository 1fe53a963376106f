"""Spooler test app: the task writes marker files into $SPOOL_OUT so tests can count
completions per task; the WSGI side spools tasks and checks the API's types and errors."""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ["SPOOL_OUT"]


def _append(name, line):
    with open(os.path.join(OUT, name), "a") as f:
        f.write(line + "\n")


def task(env):
    n = env[b"n"].decode()
    mode = env.get(b"mode", b"ok").decode()
    attempts = len(open(os.path.join(OUT, n + ".start")).readlines()) if os.path.exists(
        os.path.join(OUT, n + ".start")) else 0
    _append(n + ".start", "%f %d" % (time.time(), os.getpid()))
    if mode == "sleep":
        time.sleep(float(env[b"sleep"]))
    if mode == "hang-once" and attempts == 0:
        time.sleep(30)
    if mode == "user-harakiri-once" and attempts == 0:
        uwsgi.set_user_harakiri(1)
        time.sleep(30)
    if mode == "raise-once" and attempts == 0:
        raise RuntimeError("task %s fails once" % n)
    if mode == "retry-once" and attempts == 0:
        return uwsgi.SPOOL_RETRY
    if mode == "ignore":
        return uwsgi.SPOOL_IGNORE
    try:
        uwsgi.lock()
        lock_error = None
    except ValueError as e:
        lock_error = str(e)
    info = {
        "lock_error": lock_error,
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "spooler": uwsgi.i_am_the_spooler(),
        # spooler_dir() is 2.1 API (real uWSGI 2.0 runs this app in the interop test)
        "dir": getattr(uwsgi, "spooler_dir", lambda: b"")().decode(),
        "keys": sorted(repr(k) for k in env),
        "name": env["spooler_task_name"].decode(),
        "body": env["body"].decode("latin-1") if "body" in env else None,
        "worker_id": uwsgi.worker_id(),
    }
    _append(n, json.dumps(info))
    return uwsgi.SPOOL_OK


uwsgi.spooler = task


def check_api():
    errors = []

    def expect_error(f, exc, msg):
        try:
            f()
        except exc as e:
            if msg not in str(e):
                errors.append("%r: message %r" % (f, str(e)))
        else:
            errors.append("%r did not raise" % (f,))

    expect_error(lambda: uwsgi.spool([1]), ValueError,
                 "The argument of spooler callable must be a dictionary")
    expect_error(lambda: uwsgi.spool({"n": b"x"}), ValueError,
                 "spooler callable dictionary must contains only bytes")
    expect_error(lambda: uwsgi.spool({b"n": "x"}), ValueError,
                 "spooler callable dictionary must contains only bytes")
    expect_error(lambda: uwsgi.spool({b"n": 5}), ValueError,
                 "spooler callable dictionary must contains only bytes")
    expect_error(lambda: uwsgi.spool(n=b"x"), ValueError,
                 "spooler callable dictionary must contains only bytes")
    expect_error(lambda: uwsgi.spool({b"n": b"x", b"spooler": b"/nonexistent"}), ValueError,
                 "unable to spool job")
    expect_error(lambda: uwsgi.spool({b"n": b"x" * 70000}), ValueError, "unable to spool job")
    expect_error(lambda: uwsgi.spool({b"n": b"x", b"priority": b"../x"}), ValueError,
                 "unable to spool job")
    expect_error(uwsgi.spooler_dir, ValueError, "This process is not a spooler")
    if uwsgi.i_am_the_spooler() is not None:
        errors.append("i_am_the_spooler in a worker")
    if (uwsgi.SPOOL_OK, uwsgi.SPOOL_RETRY, uwsgi.SPOOL_IGNORE) != (-2, -1, 0):
        errors.append("constants")
    if uwsgi.send_to_spooler is not uwsgi.spool and uwsgi.send_to_spooler.__name__ != "spool":
        errors.append("send_to_spooler alias")
    pids = uwsgi.spooler_pids()
    if not (isinstance(pids, list) and pids and all(isinstance(p, int) and p > 0 for p in pids)):
        errors.append("spooler_pids %r" % (pids,))
    if uwsgi.spooler_pid() != pids[0]:
        errors.append("spooler_pid")
    if not isinstance(uwsgi.spoolers, tuple) or not all(isinstance(d, bytes) for d in uwsgi.spoolers):
        errors.append("spoolers %r" % (uwsgi.spoolers,))
    if uwsgi.set_spooler_frequency(30) is not True:
        errors.append("set_spooler_frequency")
    # a future task stays on disk: visible to spooler_jobs, spooler_get_task and parsefile
    d = {b"n": b"future", b"at": str(time.time() + 3600).encode(), b"body": b"B\x00dy"}
    path = uwsgi.spool(d)
    if not isinstance(path, bytes) or not path.startswith(uwsgi.spoolers[0]):
        errors.append("spool returned %r" % (path,))
    if b"body" in d:
        errors.append("body not removed from the caller's dict")
    if path not in uwsgi.spooler_jobs():
        errors.append("spooler_jobs %r" % (uwsgi.spooler_jobs(),))
    t = uwsgi.spooler_get_task(path.decode())
    if not t or t[b"n"] != b"future" or t["spooler_task_name"] != path or t["body"] != b"B\x00dy":
        errors.append("spooler_get_task %r" % (t,))
    if uwsgi.spooler_get_task("/nonexistent/x") is not None:
        errors.append("spooler_get_task of a missing file")
    p = uwsgi.parsefile(path.decode())
    if not p or p[b"n"] != b"future" or b"body" in p:
        errors.append("parsefile %r" % (p,))
    if uwsgi.parsefile("/etc/hostname") is not None:
        errors.append("parsefile of a non-packet")
    os.unlink(path)
    # bytearray/memoryview values are bytes-like
    p2 = uwsgi.spool({b"n": b"bytes-like", b"extra": bytearray(b"ba"), b"mv": memoryview(b"mv")})
    if not p2:
        errors.append("bytes-like values")
    return errors


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    body = b""
    if path == "/spool":
        d = {k.encode(): v.encode() for k, v in q.items() if k != "body"}
        if "body" in q:
            d[b"body"] = q["body"].encode()
        body = uwsgi.spool(d)
    elif path == "/many":
        start, count = int(q["start"]), int(q["count"])
        mode = q.get("mode", "ok").encode()
        for i in range(start, start + count):
            uwsgi.spool({b"n": str(i).encode(), b"mode": mode, b"sleep": q.get("sleep", "0").encode()})
        body = b"ok"
    elif path == "/bench":
        n = int(q["n"])
        t = time.time()
        for i in range(n):
            uwsgi.spool({b"n": b"b%d" % i, b"mode": b"ok"})
        body = json.dumps({"n": n, "elapsed": time.time() - t}).encode()
    elif path == "/api":
        errors = check_api()
        body = ("ok" if not errors else "\n".join(errors)).encode()
    elif path == "/frequency":
        body = repr(uwsgi.set_spooler_frequency(int(q["s"]))).encode()
    elif path == "/pids":
        body = json.dumps(uwsgi.spooler_pids()).encode()
    elif path == "/task":
        t = uwsgi.spooler_get_task(q["path"])
        body = repr(None if t is None else sorted(repr(k) for k in t)).encode()
    elif path == "/jobs":
        body = json.dumps([j.decode() for j in uwsgi.spooler_jobs()]).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
