"""Local caches end to end: the uwsgi.cache_* API, expiry, LRU, stores that survive a
restart, and consistency under concurrent writers and writers killed mid-write."""
import json
import os
import signal
import threading
import time

from helpers import APPS, http_request, wait_until

APP = APPS / "cacheapp.py"
CACHES = ["--cache2", "name=main,items=16,blocksize=128,keysize=64",
          "--cache2", "name=other,items=4,math_initial=100",
          "--cache2", "name=lru,items=3,purge_lru=1",
          "--cache2", "name=stress,items=32,blocksize=512"]


def get(srv, path, timeout=30):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body


def start(ruwsgi, *extra, **kw):
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                  *CACHES, *extra, **kw)


def test_api_types_and_semantics(ruwsgi):
    srv = start(ruwsgi, "--processes", "1")
    body = get(srv, "/check")
    assert body == b"ok", body.decode()


def test_every_worker_shares_the_cache(ruwsgi):
    srv = start(ruwsgi, "--processes", "2", "--threads", "2")
    get(srv, "/set?shared&v&0&main")
    for _ in range(10):
        assert get(srv, "/get?shared&main") == b"b'v'"


def test_lru_evicts_the_least_recently_used(ruwsgi):
    srv = start(ruwsgi, "--processes", "1")
    # items=3 stores 3 (uWSGI stores items-1): a, b, c; reading a makes b the oldest
    assert get(srv, "/lru") == b"[b'a', b'c', b'd']"


def test_expired_items_are_never_returned_and_are_swept(ruwsgi):
    srv = start(ruwsgi, "--processes", "1", "--cache-expire-freq", "1",
                "--cache-report-freed-items")
    assert get(srv, "/set?short&v&1&main") == b"True"
    assert get(srv, "/get?short&main") == b"b'v'"
    wait_until(lambda: get(srv, "/get?short&main") == b"None", 5, what="expiry")
    srv.wait_log(r"cache 'main': 1 expired items freed", timeout=5)


def test_a_stored_cache_survives_a_restart(ruwsgi, tmp_path):
    store = tmp_path / "main.store"
    caches = ["--cache2", "name=main,items=16,store=%s" % store]
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master", *caches)
    get(srv, "/set?kept&value&0&main")
    get(srv, "/set?soon&x&1&main")
    srv.stop()
    assert store.exists()
    # let "soon" expire while no server runs: an item set to expire in 1 s lives through
    # the whole second its expiry names, so at most 2 s
    time.sleep(2.1)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master", *caches)
    assert get(srv, "/get?kept&main") == b"b'value'"
    assert get(srv, "/get?soon&main") == b"None"
    srv.wait_log(r"cache 'main' restored 1 items from .*main\.store \(1 expired")
    # a store_sync save happens while running, and a corrupt store stops the start
    srv.stop()
    store.write_bytes(b"not a store")
    bad = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master", *caches,
                 ready=False)
    assert bad.wait_exit(timeout=15) == 1
    assert "cannot restore" in bad.log_text()
    ok = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                "--cache2", "name=main,items=16,store=%s,store_delete=1" % store)
    assert get(ok, "/get?kept&main") == b"None"
    assert "removing it (store_delete)" in ok.log_text()


def test_store_sync_saves_while_running(ruwsgi, tmp_path):
    store = tmp_path / "s.store"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--cache2", "name=main,items=8,store=%s,store_sync=1" % store)
    get(srv, "/set?live&1&0&main")
    wait_until(lambda: store.exists() and b"live" in store.read_bytes(), 5,
               what="a periodic save")


def run_all(fns):
    out = [None] * len(fns)
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fns[i]())) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out


def test_concurrent_writers_never_produce_torn_values(ruwsgi):
    srv = start(ruwsgi, "--processes", "2", "--threads", "2")
    results = [json.loads(b) for b in run_all([lambda: get(srv, "/hammer?3000", 120)] * 4)]
    assert sum(r["torn"] for r in results) == 0, results
    assert sum(r["reads"] for r in results) > 1000 and sum(r["writes"] for r in results) > 1000
    v = json.loads(get(srv, "/verify"))
    assert v["bad"] == [] and v["write"] and v["fresh"], v


def test_writers_killed_mid_write_leave_the_cache_consistent(ruwsgi, tmp_path):
    srv = start(ruwsgi, "--processes", "2")
    for _ in range(6):
        pids = set(srv.wait_children(2))
        # one worker writes in a loop; kill it while it does
        t = threading.Thread(target=lambda: http_request(srv.http.target, "GET",
                                                         "/writeloop", timeout=30))
        t.daemon = True
        t.start()
        time.sleep(0.3)
        victim = None
        for pid in pids:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "R":
                        victim = pid
            except OSError:
                pass
        victim = victim or sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in srv.children(), 10, what="the killed worker gone")
        v = json.loads(get(srv, "/verify"))
        assert v["bad"] == [] and v["write"] and v["fresh"], v
    # (when a kill landed inside a write, the log says the index was rebuilt)
    print("rebuilds after a dead writer:", srv.log_text().count("rebuilding the cache index"))


def test_bad_cache_options_stop_the_start_with_the_reason(ruwsgi, tmp_path):
    for args, reason in [
        (["--cache2", "name=x"], "expected an items=N key"),
        (["--cache2", "name=x,items=5,foo=1"], "'foo' is none"),
        (["--cache2", "name=x,items=5,nodes=10.0.0.1:3031"], "not implemented yet"),
        (["--cache2", "name=x,items=5,store=%s" % (tmp_path / "missing" / "f")],
         "the directory of its store"),
        (["--cache2", "name=a,items=2", "--cache2", "name=a,items=3"], "defined twice"),
    ]:
        srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, *args, ready=False)
        assert srv.wait_exit(timeout=15) == 1, args
        assert reason in srv.log_text(), (args, srv.log_text())
