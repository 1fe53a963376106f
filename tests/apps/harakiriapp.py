"""Requests that run too long, for the harakiri tests.

    /pid                 this worker's pid
    /sleep?S             sleep S seconds (in a function called `stuck_here`, which the
                         stack in the log shows)
    /user?U&S            set_user_harakiri(U), then sleep S seconds
    /spin?S              burn CPU for S seconds (no system call)
    /decorated?U&S       a function under uwsgidecorators' @harakiri(U) sleeping S seconds
    /graceful?S          sleep S seconds; SIGUSR1 (the graceful signal in that test) makes
                         the app write $HARAKIRI_MARK first
"""
import os
import signal
import time

import uwsgi


def stuck_here(secs):
    time.sleep(secs)


def _mark(signum, frame):
    with open(os.environ["HARAKIRI_MARK"], "w") as f:
        f.write("graceful signal %d" % signum)


if os.environ.get("HARAKIRI_MARK"):
    signal.signal(signal.SIGUSR1, _mark)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    args = [float(a) for a in environ.get("QUERY_STRING", "").split("&") if a]
    if path == "/sleep":
        stuck_here(args[0])
    elif path == "/user":
        uwsgi.set_user_harakiri(int(args[0]))
        time.sleep(args[1])
    elif path == "/spin":
        end = time.monotonic() + args[0]
        while time.monotonic() < end:
            pass
    elif path == "/decorated":
        from uwsgidecorators import harakiri

        @harakiri(int(args[0]))
        def guarded():
            time.sleep(args[1])

        guarded()
    elif path == "/graceful":
        for _ in range(int(args[0] * 10)):
            time.sleep(0.1)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
