"""uwsgidecorators, the unmodified module from PyPI, on ruwsgi (tests/apps/decoapp.py): each
decorator is seen doing its job: @postfork in every forked process, @signal, @timer,
@rbtimer, @filemon and @cron registering (and, but for @cron, firing) signals, @mulefunc,
@mule and @muleloop running code in mules, @lock serialising workers, @thread running in a
thread and @harakiri killing a worker that overruns."""
import json
import os
import threading
import time

import pytest

from conftest import Factory
from helpers import APPS, http_request, recs, wait_recs, wait_until

APP = APPS / "decoapp.py"


def get(srv, path, timeout=10.0):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body.decode()


@pytest.fixture(scope="module")
def deco(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deco")
    out = tmp / "out"
    out.mkdir()
    (tmp / "watched").write_text("x")
    f = Factory(tmp)
    srv = f("--master", "--processes", "2", "--mules", "3", "--http-socket", "127.0.0.1:0",
            "--wsgi-file", APP, env=dict(os.environ, DECO_OUT=str(out)), site=True,
            name="deco")
    try:
        yield srv, out, tmp
    finally:
        f.cleanup()


def test_postfork_runs_in_every_forked_process(deco):
    srv, out, _ = deco
    recs_ = wait_until(lambda: (lambda r: r if len(r) >= 5 else None)(recs(out, "postfork")),
                       10, what="postfork in 2 workers and 3 mules")
    assert sorted((r["wid"], r["mid"]) for r in recs_) == [
        (0, 1), (0, 2), (0, 3), (1, 0), (2, 0)]
    assert len({r["pid"] for r in recs_}) == 5 and srv.pid not in {r["pid"] for r in recs_}


def test_signal_decorators(deco):
    srv, out, tmp = deco
    # @signal(100)
    assert get(srv, "/raise?n=100") == "None"
    assert wait_recs(out, "signal", 1)[0]["num"] == 100
    # @timer(1) and @rbtimer(1) fire every second; @timer(1) without signum got a free one
    auto = json.loads(get(srv, "/numbers"))["auto"]
    assert isinstance(auto, int) and auto not in (100, 101, 102, 103, 104)
    assert get(srv, "/registered?n=%d" % auto) == "True"
    timer = wait_recs(out, "timer", 2, timeout=6)
    assert {r["num"] for r in timer} == {101}
    assert {r["num"] for r in wait_recs(out, "rbtimer", 2, timeout=6)} == {102}
    assert {r["num"] for r in wait_recs(out, "autotimer", 2, timeout=6)} == {auto}
    # @filemon: the timers fired, so the master has armed the monitor as well
    os.utime(tmp / "watched", (time.time() + 5, time.time() + 5))
    assert wait_recs(out, "filemon", 1, timeout=5)[0]["num"] == 104
    # @cron registered its signal (when it fires depends on the wall clock: not waited for)
    for _ in range(2):
        assert get(srv, "/registered?n=103") == "True"
    assert get(srv, "/registered?n=105") == "None"


def test_mule_decorators(deco):
    srv, out, _ = deco
    # @mule(1) ran once in mule 1; @muleloop(2) keeps calling its function in mule 2
    brain = wait_recs(out, "brain", 1)
    assert [r["mid"] for r in brain] == [1]
    loop = wait_recs(out, "muleloop", 4)
    assert {r["mid"] for r in loop} == {2} and len({r["pid"] for r in loop}) == 1
    # @mulefunc: the call is pickled to the mules and runs in one of them (mule 2 is busy
    # in its loop); @mulefunc(3) in mule 3
    assert get(srv, "/mulefunc?x=hello") == "None"
    run = wait_until(lambda: [r for r in recs(out, "mulefunc") if r["x"] == "hello"], 10,
                     what="the mulefunc call")
    assert len(run) == 1 and run[0]["mid"] in (1, 3) and run[0]["wid"] == 0
    for i in range(3):
        assert get(srv, "/mulefunc3?x=m3-%d" % i) == "None"
    runs3 = wait_recs(out, "mulefunc3", 3)
    assert [r["x"] for r in runs3] == ["m3-0", "m3-1", "m3-2"]
    assert {r["mid"] for r in runs3} == {3}
    assert len(recs(out, "brain")) == 1


def test_lock_serialises_the_workers(deco):
    srv, out, _ = deco
    results = []

    def call():
        results.append(get(srv, "/locked"))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == ["ok", "ok"]
    starts, ends = recs(out, "locked-start"), recs(out, "locked-end")
    assert len(starts) == 2 and len(ends) == 2
    # both workers ran it (the first one held the lock while the second waited)
    assert {r["wid"] for r in starts} == {1, 2}, starts
    spans = sorted((s["t"], e["t"]) for s, e in zip(
        sorted(starts, key=lambda r: r["pid"]), sorted(ends, key=lambda r: r["pid"])))
    assert spans[0][1] <= spans[1][0], spans


def test_thread_runs_in_the_background(deco):
    srv, out, _ = deco
    # the request returns while the decorated function still sleeps in its thread
    assert get(srv, "/thread") == "started False"
    rec = wait_recs(out, "thread", 1, timeout=5)[0]
    assert rec["thread"] != "MainThread" and rec["wid"] in (1, 2)


def test_harakiri_decorator(deco):
    srv, out, _ = deco
    mark = srv.log_len()
    t0 = time.monotonic()
    r = http_request(srv.http.target, "GET", "/harakiri", timeout=10)
    took = time.monotonic() - t0
    assert r.status is None and r.closed, r
    assert 0.5 <= took < 4.0, took      # (uWSGI checks harakiri once a second)
    srv.wait_log(r"HARAKIRI \(user\) triggered by worker [12]", start=mark, timeout=5)
    assert recs(out, "harakiri-survived") == []
    # the replacement worker serves
    wait_until(lambda: get(srv, "/") == "ok", 10, what="a worker serving again")
