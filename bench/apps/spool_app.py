"""Spooler benchmark app (ruwsgi and uWSGI alike).

GET /?n=N makes the worker call uwsgi.spool() N times (a small task: three vars) and
report the elapsed seconds. The spooler function counts tasks; when it has run
$BENCH_TASKS of them it writes the seconds between the start of its first task and the end
of the last one to $BENCH_RESULT."""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi

TASKS = int(os.environ.get("BENCH_TASKS", "0"))
RESULT = os.environ.get("BENCH_RESULT", "")
state = {"n": 0, "t0": None}


def task(env):
    now = time.perf_counter()
    if state["t0"] is None:
        state["t0"] = now
    state["n"] += 1
    if state["n"] == TASKS and RESULT:
        end = time.perf_counter()
        with open(RESULT + ".tmp", "w") as f:
            f.write("%f" % (end - state["t0"]))
        os.rename(RESULT + ".tmp", RESULT)
    return uwsgi.SPOOL_OK


uwsgi.spooler = task


def application(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    n = int(q.get("n", ["0"])[0])
    arg = b"x" * 64
    spool = uwsgi.spool
    t0 = time.perf_counter()
    for i in range(n):
        spool({b"task": b"bench", b"i": b"%d" % i, b"arg": arg})
    elapsed = time.perf_counter() - t0
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"n": n, "elapsed": elapsed}).encode()]
