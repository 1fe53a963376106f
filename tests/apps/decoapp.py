"""uwsgidecorators (the unmodified module from PyPI) on top of the signal framework and the
mules (tests/test_decorators.py). Every decorated function appends a JSON line (pid, worker
id, mule id, extras) to $DECO_OUT/<tag> when it runs.

Run with --master, 2 workers and 3 mules: mule 1 runs @mule(1) once and then serves
@mulefunc messages as a plain mule, mule 2 loops in @muleloop(2), mule 3 is plain.

Endpoints (GET): /raise?n=N, /registered?n=N, /numbers (the auto-assigned signal numbers),
/mulefunc?x=X, /mulefunc3?x=X, /locked, /thread, /harakiri, /.
"""
import json
import os
import threading
import time
from urllib.parse import parse_qs

import uwsgi
from records import append_record
from uwsgidecorators import (cron, filemon, harakiri, lock, mule, mulefunc, muleloop,
                             postfork, rbtimer, signal, thread, timer)

OUT = os.environ["DECO_OUT"]


def record(tag, **fields):
    append_record(OUT, tag, **fields)


@postfork
def after_fork():
    record("postfork")


@signal(100)
def on_signal(num):
    record("signal", num=num)


@timer(1, signum=101)
def on_timer(num):
    record("timer", num=num)


@rbtimer(1, signum=102)
def on_rbtimer(num):
    record("rbtimer", num=num)


@cron(-1, -1, -1, -1, -1, signum=103)
def on_cron(num):
    record("cron", num=num)


@filemon(os.path.join(OUT, "..", "watched"), signum=104)
def on_change(num):
    record("filemon", num=num)


# a free signal number chosen by the decorator (the first one not registered)
auto = timer(1)
auto(lambda num: record("autotimer", num=num))
AUTO_NUM = auto.num


@mulefunc
def in_any_mule(x):
    record("mulefunc", x=x)


@mulefunc(3)
def in_mule3(x):
    record("mulefunc3", x=x)


@mule(1)
def brain():
    record("brain")


@muleloop(2)
def looping():
    record("muleloop")
    time.sleep(0.2)


@lock
def locked():
    record("locked-start")
    time.sleep(0.4)
    record("locked-end")


@thread
def background(tag):
    time.sleep(0.5)
    record(tag, thread=threading.current_thread().name)


@harakiri(1)
def too_slow():
    time.sleep(10)
    record("harakiri-survived")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = "ok"
    if path == "/raise":
        body = repr(uwsgi.signal(int(q["n"])))
    elif path == "/registered":
        body = repr(uwsgi.signal_registered(int(q["n"])))
    elif path == "/numbers":
        body = json.dumps({"auto": AUTO_NUM})
    elif path == "/mulefunc":
        body = repr(in_any_mule(q["x"]))
    elif path == "/mulefunc3":
        body = repr(in_mule3(q["x"]))
    elif path == "/locked":
        locked()
    elif path == "/thread":
        background("thread")
        body = "started %s" % os.path.exists(os.path.join(OUT, "thread"))
    elif path == "/harakiri":
        too_slow()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body.encode())))])
    return [body.encode()]
