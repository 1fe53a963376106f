"""RT-17: the spooler, a mule, a cache and a timer signal across a reload.

Each spool job leaves one marker file; a job that ran twice leaves a `dup-` file too. The
timer's handler appends a line per firing, with the master's reload count."""
import os

import uwsgi

OUT = os.environ["RT17_OUT"]


def tick(num):
    with open(os.path.join(OUT, "ticks"), "a") as f:
        f.write("%s\n" % os.environ.get("UWSGI_RELOADS", "0"))


uwsgi.register_signal(20, "worker", tick)
uwsgi.add_timer(20, 1)


def job(env):
    name = env[b"job"].decode()
    try:
        fd = os.open(os.path.join(OUT, "job-" + name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        open(os.path.join(OUT, "dup-" + name), "a").close()
    return uwsgi.SPOOL_OK


uwsgi.spooler = job


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = b"ok"
    if path.startswith("/spool/"):
        uwsgi.spool({b"job": path[7:].encode()})
    elif path.startswith("/set/"):
        uwsgi.cache_set(path[5:], b"v" + path[5:].encode(), 0, "c")
    elif path == "/keys":
        body = b",".join(sorted(k for k in (uwsgi.cache_keys("c") or [])))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
