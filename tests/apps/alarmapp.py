"""WSGI app for the alarm tests (tests/test_alarms.py).

Endpoints (query `m` is the text): /err prints it to stderr, /out to stdout, /log through
uwsgi.log; /alarm?name=N&m=TEXT[&bytes=1] calls uwsgi.alarm and answers repr() of its
result; /segv kills the worker with SIGSEGV; /sleep?s=N[&mark=1] sleeps (first
appending "sleeping" to ALARM_DIR/sleeping.txt); /burst?n=N&w=W writes N
numbered lines of about W bytes to fd 2, one write(2) each.

With ALARM_DIR set, at import (in the master when apps are preloaded): signal 17 is
registered for any worker with a handler appending "signal 17" to ALARM_DIR/signal.txt,
and uwsgi.mule_msg_hook appends each mule message to ALARM_DIR/mule.txt.
"""
import os
import signal
import sys
import time
from urllib.parse import parse_qs

import uwsgi

DIR = os.environ.get("ALARM_DIR")


def _append(name, text):
    with open(os.path.join(DIR, name), "a") as f:
        f.write(text + "\n")


if DIR:
    uwsgi.register_signal(17, "worker", lambda num: _append("signal.txt", "signal %d" % num))

    def _mule_hook(msg):
        _append("mule.txt", msg.decode("utf-8", "replace"))

    uwsgi.mule_msg_hook = _mule_hook


def application(environ, start_response):
    q = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    text = q.get("m", "")
    body = "ok"
    if path == "/err":
        print(text, file=sys.stderr, flush=True)
    elif path == "/out":
        print(text, flush=True)
    elif path == "/log":
        uwsgi.log(text)
    elif path == "/alarm":
        msg = text.encode() if q.get("bytes") else text
        body = repr(uwsgi.alarm(q.get("name", ""), msg))
    elif path == "/segv":
        # The Rust runtime's stack-overflow handler takes the first SIGSEGV that is sent
        # rather than caused by a fault, and only restores the default action: the next
        # one kills.
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGSEGV)
    elif path == "/sleep":
        if q.get("mark"):
            _append("sleeping.txt", "sleeping")
        time.sleep(float(q.get("s", "1")))
    elif path == "/burst":
        n, w = int(q.get("n", "10")), int(q.get("w", "80"))
        for i in range(n):
            head = "burst %d %d %d " % (os.getpid(), w, i)
            # One write(2) per line, as a logger must (print() writes the newline apart).
            os.write(2, (head + "x" * max(0, w - len(head)) + " end\n").encode())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
