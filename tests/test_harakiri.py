"""Harakiri end to end: a request past `harakiri` gets its worker killed between S and S+1
seconds (plus the stacks' short grace), logged with the worker, pid, request and every
thread's Python stack; the client gets a close; the worker is respawned. User deadlines
(`set_user_harakiri`) in workers and mules, uwsgidecorators' `@harakiri`, the graceful
signal, and threads (each core has its own deadline)."""
import os
import re
import threading
import time

from helpers import APPS, http_request, wait_until

APP = APPS / "harakiriapp.py"
# the master looks once a second; the stacks get 0.3 s before SIGKILL; scheduling slack
LATE = 1.6


def start(ruwsgi, *extra, **kw):
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master", *extra, **kw)


def pid_of(srv):
    r = http_request(srv.http.target, "GET", "/pid", timeout=10)
    assert r.status == 200, r
    return int(r.body)


def timed(srv, path, timeout=30):
    t0 = time.monotonic()
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    return r, time.monotonic() - t0


def test_a_request_past_harakiri_is_killed_logged_and_its_worker_respawned(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", "--harakiri", "2", "--harakiri-verbose")
    before = pid_of(srv)
    r, took = timed(srv, "/sleep?30")
    assert r.closed and r.status is None, r      # a close, no response, no hang
    assert 2.0 <= took <= 2 + LATE, took
    srv.wait_log(r"killed by harakiri", timeout=5)
    log = srv.log_text()
    assert "*** HARAKIRI ON WORKER 1 (pid: %d, try: 1, graceful: no) ***" % before in log
    assert "HARAKIRI triggered by worker 1 core 0 !!!" in log
    assert re.search(r'worker 1 core 0 \(pid: %d\) was serving "GET /sleep\?30" for [23]\.\d s'
                     % before, log), log
    assert "/proc/%d/syscall" % before in log and "/proc/%d/wchan" % before in log
    # every thread's stack, the stuck function in it
    assert re.search(r'File ".*harakiriapp\.py", line \d+ in stuck_here', log), log
    # respawned and serving
    after = pid_of(srv)
    assert after != before
    srv.wait_log(r"Respawned ruwsgi worker 1", timeout=5)


def test_cpu_bound_requests_are_killed_too(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", "--harakiri", "1")
    r, took = timed(srv, "/spin?20")
    assert r.closed and r.status is None and 1.0 <= took <= 1 + LATE, (r, took)
    srv.wait_log(r'was serving "GET /spin\?20"', timeout=5)
    assert pid_of(srv)


def test_requests_within_harakiri_are_untouched(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", "--harakiri", "2")
    pid = pid_of(srv)
    for _ in range(3):
        r, took = timed(srv, "/sleep?1.2")
        assert r.status == 200, r
    assert pid_of(srv) == pid
    assert "HARAKIRI" not in srv.log_text()


def test_each_core_has_its_own_deadline(ruwsgi):
    """With threads, quick requests finishing on one core do not clear the stuck core's
    deadline: the worker still dies in time."""
    srv = start(ruwsgi, "--processes", "1", "--threads", "2", "--harakiri", "2")
    result = {}

    def stuck():
        result["r"] = timed(srv, "/sleep?30")

    t = threading.Thread(target=stuck)
    t.start()
    deadline = time.monotonic() + 1.5
    quick = 0
    while time.monotonic() < deadline:
        r = http_request(srv.http.target, "GET", "/pid", timeout=5)
        if r.status == 200:
            quick += 1
        time.sleep(0.05)
    t.join(15)
    r, took = result["r"]
    assert quick > 5, quick
    assert r.closed and r.status is None and 2.0 <= took <= 2 + LATE, (r, took)
    srv.wait_log(r"HARAKIRI triggered by worker 1 core \d !!!", timeout=5)


def test_set_user_harakiri_in_a_worker(ruwsgi):
    srv = start(ruwsgi, "--processes", "1")       # no harakiri option: only the app's own
    r, took = timed(srv, "/user?1&20")
    assert r.closed and r.status is None and 1.0 <= took <= 1 + LATE, (r, took)
    srv.wait_log(r"HARAKIRI \(user\) triggered by worker 1 core 0 !!!", timeout=5)
    # the deadline ends with its request: the next one may take longer than it
    pid = pid_of(srv)
    r, took = timed(srv, "/user?1&0")
    assert r.status == 200
    r, took = timed(srv, "/sleep?2.2")
    assert r.status == 200 and pid_of(srv) == pid, r
    # 0 clears it within the request
    r, took = timed(srv, "/user?0&1.5")
    assert r.status == 200


def test_uwsgidecorators_harakiri(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", site=True)
    r, took = timed(srv, "/decorated?1&20")
    assert r.closed and r.status is None and 1.0 <= took <= 1 + LATE, (r, took)
    srv.wait_log(r"HARAKIRI \(user\) triggered by worker 1", timeout=5)
    r, _ = timed(srv, "/decorated?3&0.2")                # finishes in time: cleared after
    assert r.status == 200, r
    r, _ = timed(srv, "/sleep?3.5")
    assert r.status == 200, r


def test_set_user_harakiri_in_a_mule(ruwsgi, tmp_path):
    out = tmp_path / "mule"
    out.mkdir()
    srv = start(ruwsgi, "--processes", "1", "--mule", APPS / "harakirimule.py",
                env={**os.environ, "HARAKIRI_MULE_OUT": str(out)})
    wait_until(lambda: len(os.listdir(out)) >= 1, 10, what="the mule's start")
    first = int(os.listdir(out)[0])
    srv.wait_log(r"HARAKIRI \(user\) triggered by mule 1 core 0 !!!", timeout=5)
    srv.wait_log(r"mule 1 \(pid: %d\) killed by harakiri" % first, timeout=5)
    # respawned: a new pid reports, and gets the same fate
    wait_until(lambda: len(os.listdir(out)) >= 2, 10, what="the mule's respawn")


def test_graceful_harakiri_sends_the_signal_first(ruwsgi, tmp_path):
    mark = tmp_path / "mark"
    srv = start(ruwsgi, "--processes", "1", "--harakiri", "1",
                "--harakiri-graceful-timeout", "2", "--harakiri-graceful-signal", "10",
                env={**os.environ, "HARAKIRI_MARK": str(mark)})
    r, took = timed(srv, "/graceful?30")
    assert r.closed and r.status is None, r
    assert 3.0 <= took <= 3 + LATE, took           # harakiri at 1-2 s, SIGKILL 2 s later
    assert mark.read_text() == "graceful signal 10"
    log = srv.log_text()
    assert "graceful: yes" in log and "HARAKIRI: SIGKILL to worker 1" in log


def test_bad_harakiri_values_stop_the_start(ruwsgi):
    for args, what in ((["--harakiri", "soon"], "harakiri"),
                       (["--harakiri-graceful-signal", "99"], "harakiri-graceful-signal")):
        srv = start(ruwsgi, "--processes", "1", *args, ready=False)
        code = srv.wait_exit(timeout=10)
        assert code != 0
        assert "'%s'" % what in srv.log_text(), srv.log_text()
