"""Shared areas (`sharedarea`, uwsgi.sharedarea_*) across workers and threads."""
import threading

from helpers import APPS, http_request

APP = APPS / "sharedareaapp.py"


def get(srv, path, headers=None):
    r = http_request(srv.http.target, "GET", path, headers=headers, timeout=20)
    assert r.status == 200, r
    return r.body


def start(ruwsgi, *extra):
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                  "--sharedarea", "1", "--sharedarea", "size=64", *extra)


def test_api_types_errors_locks_and_memoryview(ruwsgi):
    srv = start(ruwsgi, "--processes", "1")
    body = get(srv, "/check")
    assert body == b"ok", body.decode()


def test_the_group_exists_only_with_sharedarea(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master")
    assert get(srv, "/has") == b"False"
    assert get(start(ruwsgi, "--processes", "1"), "/has") == b"True"


def test_every_worker_sees_one_area_and_counters_add_up(ruwsgi):
    srv = start(ruwsgi, "--processes", "2", "--threads", "2")
    get(srv, "/write?shared")
    for _ in range(10):
        assert get(srv, "/read", headers={"X-Len": "6"}) == b"shared"
    threads = [threading.Thread(target=lambda: get(srv, "/count?500")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert get(srv, "/total") == b"3000"


def test_bad_sharedarea_values_stop_the_start(ruwsgi):
    for bad in ("0", "file=/tmp/area", "pages=x"):
        srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP,
                     "--sharedarea", bad, ready=False)
        assert srv.wait_exit(timeout=15) == 1
        assert "sharedarea" in srv.log_text(), srv.log_text()
