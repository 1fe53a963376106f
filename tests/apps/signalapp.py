"""The uWSGI signal framework under test (tests/test_signals.py).

Every handler appends one JSON line per run to $SIG_OUT/<tag>: the signal number and who ran
it (pid, worker id, mule id, spooler or not), so a test counts runs per process instead of
sampling. What is registered at import (in the master) depends on $SIG_PROFILE:

  targets  one signal per target kind (see TARGETS), plus the signals of signal_wait
  timers   timers, rb timers, ms timers, file monitors, touch-signal and crons
  load     a signal to every worker, raised by a 100 ms timer (the load test)

The app also runs under real uWSGI (the remote-signal interop tests): uWSGI-only
differences are guarded.

Endpoints (GET):
  /raise?n=N[&node=ADDR]   uwsgi.signal(N) or uwsgi.signal(N, ADDR); "ok" or "Exc: message"
  /registered?n=N          repr(uwsgi.signal_registered(N))
  /register?n=N&target=T   uwsgi.register_signal(N, T, handler) in this worker
  /reg                     the results of the registrations tried at import (JSON)
  /info                    {"pid", "wid"} of the worker
  /wait[?n=1]              signal_wait() (or signal_wait(33|34) with n) in this worker
  /raise_other?base=B      raise B (worker 2 answering) or B+1 (worker 1 answering): the
                           signal of the *other* worker, for /wait
  /slow?s=SECONDS          sleep (a worker kept busy); {"wid", "core", "end"}; the file
                           $SIG_OUT/slow-WID holds the core while it sleeps
  /                        "ok"
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

OUT = os.environ["SIG_OUT"]
PROFILE = os.environ.get("SIG_PROFILE", "targets")


def record(tag, signum):
    line = json.dumps({
        "sig": signum, "pid": os.getpid(), "wid": uwsgi.worker_id(),
        "mid": uwsgi.mule_id(), "spooler": bool(uwsgi.i_am_the_spooler()),
        "t": time.time(),
    }) + "\n"
    fd = os.open(os.path.join(OUT, tag), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def handler(tag):
    def run(signum):
        record(tag, signum)
    return run


def outcome(fn, *args):
    try:
        return repr(fn(*args))
    except Exception as e:  # noqa: BLE001 - the test reads the exception
        return "%s: %s" % (type(e).__name__, e)


REG = {}

# signal number -> (target, tag of its output file)
TARGETS = {
    10: ("", "any"),
    11: ("workers", "workers"),
    12: ("worker2", "worker2"),
    13: ("active-workers", "active"),
    14: ("mule", "mule"),
    15: ("mules", "mules"),
    16: ("mule2", "mule2"),
    17: ("farm_alpha", "farm_alpha"),
    18: ("farm2", "farm2"),
    19: ("spooler", "spooler"),
    20: ("worker", "worker"),
    21: ("workers", "busy"),
    # signal_wait: one number per worker
    31: ("worker1", "wait"),
    32: ("worker2", "wait"),
    33: ("worker1", "wait"),
    34: ("worker2", "wait"),
    # a handler that raises
    50: ("", "raising"),
}


def raising(signum):
    record("raising", signum)
    raise RuntimeError("handler of %d fails" % signum)


if PROFILE == "targets":
    for num, (target, tag) in TARGETS.items():
        REG[num] = outcome(uwsgi.register_signal, num, target,
                           raising if num == 50 else handler(tag))
    # the master cannot register a number twice
    REG["again"] = outcome(uwsgi.register_signal, 10, "", handler("again"))
    REG["bad_target"] = outcome(uwsgi.register_signal, 60, "nonsense", handler("bad"))
    REG["long_target"] = outcome(uwsgi.register_signal, 61, "worker" + "1" * 60, handler("long"))
    REG["registered_10"] = repr(uwsgi.signal_registered(10))
    REG["registered_99"] = repr(uwsgi.signal_registered(99))
elif PROFILE == "timers":
    REG[40] = outcome(uwsgi.register_signal, 40, "", handler("timer"))
    REG["add_timer"] = outcome(uwsgi.add_timer, 40, 1)
    REG[41] = outcome(uwsgi.register_signal, 41, "", handler("rbtimer"))
    REG["add_rb_timer"] = outcome(uwsgi.add_rb_timer, 41, 1, 3)
    if hasattr(uwsgi, "add_ms_timer"):
        REG[42] = outcome(uwsgi.register_signal, 42, "", handler("mstimer"))
        REG["add_ms_timer"] = outcome(uwsgi.add_ms_timer, 42, 200)
    # raised by the `timer` and `rbtimer` options
    REG[43] = outcome(uwsgi.register_signal, 43, "", handler("cfg_timer"))
    REG[44] = outcome(uwsgi.register_signal, 44, "", handler("cfg_rbtimer"))
    REG[45] = outcome(uwsgi.register_signal, 45, "", handler("filemon"))
    REG["add_file_monitor"] = outcome(uwsgi.add_file_monitor, 45,
                                      os.path.join(OUT, "..", "watched"))
    # raised by the `touch-signal` option
    REG[46] = outcome(uwsgi.register_signal, 46, "", handler("touch"))
    REG[47] = outcome(uwsgi.register_signal, 47, "", handler("cron"))
    REG["add_cron"] = outcome(uwsgi.add_cron, 47, -1, -1, -1, -1, -1)
    REG["long_monitor"] = outcome(uwsgi.add_file_monitor, 48, "/" + "x" * 300)
elif PROFILE == "load":
    REG[70] = outcome(uwsgi.register_signal, 70, "workers", handler("load"))
    REG["add_ms_timer"] = outcome(uwsgi.add_ms_timer, 70, 100)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = "ok"
    if path == "/raise":
        n = int(q["n"])
        if "node" in q:
            t0 = time.monotonic()
            body = outcome(uwsgi.signal, n, q["node"])
            body += " (%.2f s)" % (time.monotonic() - t0)
        else:
            body = outcome(uwsgi.signal, n)
    elif path == "/registered":
        body = repr(uwsgi.signal_registered(int(q["n"])))
    elif path == "/register":
        body = outcome(uwsgi.register_signal, int(q["n"]), q.get("target", ""),
                       handler("registered_in_worker"))
    elif path == "/reg":
        body = json.dumps({str(k): v for k, v in REG.items()})
    elif path == "/info":
        body = json.dumps({"pid": os.getpid(), "wid": uwsgi.worker_id()})
    elif path == "/wait":
        wid = uwsgi.worker_id()
        before = uwsgi.signal_received()
        marker = os.path.join(OUT, "waiting-%d" % wid)
        open(marker, "w").close()
        if "n" in q:
            got = uwsgi.signal_wait(33 if wid == 1 else 34)
        else:
            got = uwsgi.signal_wait()
        os.unlink(marker)
        body = json.dumps({"wid": wid, "before": before, "returned": repr(got),
                           "received": uwsgi.signal_received()})
    elif path == "/raise_other":
        base = int(q["base"])
        other = 2 if uwsgi.worker_id() == 1 else 1
        for n in q.get("first", "").split(","):
            if n:
                uwsgi.signal(int(n) + other - 1)
        body = outcome(uwsgi.signal, base + other - 1)
    elif path == "/slow":
        core = environ.get("uwsgi.core", 0)
        marker = os.path.join(OUT, "slow-%d" % uwsgi.worker_id())
        with open(marker + ".tmp", "w") as f:
            f.write(str(core))
        os.rename(marker + ".tmp", marker)
        time.sleep(float(q.get("s", "1")))
        os.unlink(marker)
        body = json.dumps({"wid": uwsgi.worker_id(), "core": core, "end": time.time()})
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body.encode())))])
    return [body.encode()]
