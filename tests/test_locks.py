"""User locks (`locks N`, uwsgi.lock/unlock/is_locked) across workers, threads and mules,
and their recovery when a holder dies."""
import json
import os
import signal
import threading

from helpers import APPS, http_request, wait_until

APP = APPS / "locksapp.py"


def get(srv, path, headers=None, timeout=10):
    r = http_request(srv.http.target, "GET", path, headers=headers, timeout=timeout)
    assert r.status == 200, r
    return r.body


def test_api_types_errors_and_the_decorator(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "1", "--locks", "3", site=True)
    body = get(srv, "/check")
    assert body == b"ok", body.decode()


def test_default_is_lock_zero_only(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "1", site=True)
    body = get(srv, "/check")
    assert body == b"ok", body.decode()


def run_concurrently(fns):
    out = [None] * len(fns)
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, fns[i]()))
               for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_a_lock_serialises_workers_and_threads(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "2", "--threads", "2", site=True)
    spans = [json.loads(b) for b in
             run_concurrently([lambda: get(srv, "/critical?0")] * 4)]
    # every pair of critical sections is disjoint
    spans.sort(key=lambda s: s[1])
    for a, b in zip(spans, spans[1:]):
        assert a[2] <= b[1], spans
    # different locks do not wait for each other
    srv2 = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                  "--processes", "2", "--locks", "1", site=True)
    a, b = [json.loads(x) for x in
            run_concurrently([lambda: get(srv2, "/critical?0"), lambda: get(srv2, "/critical?1")])]
    # both critical sections ran at the same time (CLOCK_MONOTONIC is shared by processes)
    assert max(a[1], b[1]) < min(a[2], b[2]), (a, b)


def test_a_lock_held_by_a_killed_worker_is_recovered(ruwsgi, tmp_path):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "2", "--locks", "1", site=True)
    pidfile = tmp_path / "holder.pid"
    holder = threading.Thread(
        target=lambda: http_request(srv.http.target, "GET", "/hold?1",
                                    headers={"X-Pidfile": str(pidfile)}, timeout=70))
    holder.daemon = True
    holder.start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text(), 10, what="the holder")
    pid = int(pidfile.read_text())
    start = srv.log_len()
    os.kill(pid, signal.SIGKILL)
    # the other worker (or the respawned one) gets the lock
    taker = int(get(srv, "/take?1", timeout=20))
    assert taker != pid
    srv.wait_log(r"user lock 1 recovered: its previous holder died holding it", start=start)


def test_a_mule_uses_the_locks(ruwsgi, tmp_path):
    out = tmp_path / "mule.out"
    ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master", "--processes",
           "1", "--locks", "2", "--mule", APPS / "locksmule.py",
           env={"LOCKS_MULE_OUT": str(out)}, site=True)
    wait_until(out.exists, 15, what="the mule's report")
    assert out.read_text() == "held=True after=False"
