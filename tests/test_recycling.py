"""Recycling besides max-requests: reload-on-rss/-as and reload-on-exception (the worker,
after a request), evil-reload-on-rss (the master, SIGKILL), max-worker-lifetime (the
master, gracefully). Each replaced worker is respawned and serves again."""
from helpers import APPS, http_request, wait_until

APP = APPS / "recycleapp.py"


def start(ruwsgi, *extra):
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                  "--processes", "1", "--min-worker-lifetime", "0", *extra)


def get(srv, path):
    r = http_request(srv.http.target, "GET", path, timeout=10)
    return r.status, r.body


def pid_of(srv):
    status, body = get(srv, "/pid")
    assert status == 200
    return int(body)


def replaced(srv, old):
    def check():
        try:
            return pid_of(srv) != old
        except (AssertionError, ValueError, OSError):
            return False
    return check


def test_reload_on_exception(ruwsgi):
    srv = start(ruwsgi, "--reload-on-exception")
    first = pid_of(srv)
    assert pid_of(srv) == first                  # a good request keeps the worker
    assert get(srv, "/raise")[0] == 500
    wait_until(replaced(srv, first), 10, what="a new worker")
    srv.wait_log(r"The work of process %d is done \(reload-on-exception\)" % first)


def test_reload_on_rss(ruwsgi):
    srv = start(ruwsgi, "--reload-on-rss", "80")
    first = pid_of(srv)
    assert get(srv, "/grow?10")[0] == 200         # still under the limit
    assert pid_of(srv) == first
    assert get(srv, "/grow?100")[0] == 200        # the request completes, then the recycle
    wait_until(replaced(srv, first), 10, what="a new worker")
    srv.wait_log(r"The work of process %d is done \(reload-on-rss: \d+ MB > 80 MB\)" % first)


def test_reload_on_as(ruwsgi):
    srv = start(ruwsgi, "--reload-on-as", "1")   # any process is above 1 MB
    first = pid_of(srv)
    wait_until(replaced(srv, first), 10, what="a new worker")
    srv.wait_log(r"reload-on-as: \d+ MB > 1 MB")


def test_evil_reload_on_rss(ruwsgi):
    srv = start(ruwsgi, "--evil-reload-on-rss", "80")
    first = pid_of(srv)
    assert get(srv, "/grow?100")[0] == 200
    wait_until(replaced(srv, first), 10, what="a new worker")
    srv.wait_log(r"worker 1 \(pid: %d\) uses too much memory \(evil-reload-on-rss: \d+ MB > "
                 r"80 MB\): SIGKILL" % first)


def test_max_worker_lifetime(ruwsgi):
    srv = start(ruwsgi, "--max-worker-lifetime", "2")
    first = pid_of(srv)
    wait_until(replaced(srv, first), 10, what="a new worker")
    srv.wait_log(r"worker 1 \(pid: %d\) lived [23]s \(max-worker-lifetime\)" % first)
    srv.wait_log(r"worker 1 \(pid: %d\) recycled" % first)
