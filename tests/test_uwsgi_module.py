"""The `uwsgi` module seen by applications."""
import concurrent.futures as cf

import requests

from helpers import wait_until


def facts(srv, path="/uwsgi"):
    return requests.get(srv.url + path, timeout=10).json()


def test_version_is_bytes(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app)
    f = facts(srv)
    assert f["present"] is True
    assert f["version_type"] == "bytes"
    assert f["version"]["bytes"]


def test_opt_contents(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "2", "--set", "foo=bar")
    opt = facts(srv)["opt"]
    assert opt["processes"] == {"bytes": "2"}
    assert opt["master"] is True
    assert opt["wsgi-file"] == {"bytes": fault_app}
    assert opt["foo"] == {"bytes": "bar"}
    assert opt["http-socket"] == {"bytes": "127.0.0.1:0"}


def test_opt_from_ini_flag_value(ruwsgi, tmp_path, fault_app):
    conf = tmp_path / "o.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\nmaster = true\n" % fault_app)
    srv = ruwsgi("--ini", conf)
    opt = facts(srv)["opt"]
    assert opt["master"] == {"bytes": "true"}
    assert opt["ini"] == {"bytes": str(conf)}


def collect_worker_ids(srv, n, rounds=10):
    seen = {}
    with cf.ThreadPoolExecutor(n) as ex:
        for _ in range(rounds):
            for f in ex.map(lambda _: facts(srv, "/uwsgi?sleep=0.3"), range(n)):
                seen[f["worker_id"]] = f
            if len(seen) == n:
                break
    return seen


def test_worker_id_masterpid_numproc(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "3")
    kids = set(srv.wait_children(3))
    seen = collect_worker_ids(srv, 3)
    assert set(seen) == {1, 2, 3}, seen.keys()
    for wid, f in seen.items():
        assert f["masterpid"] == srv.pid
        assert f["numproc"] == 3
        assert f["pid"] in kids
    assert len({f["pid"] for f in seen.values()}) == 3


def test_sockets_lists_the_listening_fds(ruwsgi, fault_app, tmp_path):
    sock = str(tmp_path / "app.sock")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", sock, "--wsgi-file", fault_app)
    f = facts(srv)
    http = next(lst for lst in srv.listeners if lst.kind == "http-socket")
    assert [fd for fd, _ in f["sockets"]] == [lst.fd for lst in srv.listeners]
    assert [name for _, name in f["sockets"]] == [http.addr, sock]


def test_worker_id_lazy_apps(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "2", "--lazy-apps")
    srv.wait_children(2)
    seen = collect_worker_ids(srv, 2)
    assert set(seen) == {1, 2}
    assert all(f["masterpid"] == srv.pid for f in seen.values())


def test_worker_id_survives_respawn(ruwsgi, fault_app):
    import os
    import signal
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "2")
    before = set(srv.wait_children(2))
    os.kill(sorted(before)[0], signal.SIGKILL)
    wait_until(lambda: (lambda k: len(k) == 2 and k != before)(set(srv.children())), 10,
               what="respawn")
    seen = collect_worker_ids(srv, 2)
    assert set(seen) == {1, 2}


def test_uwsgi_env_keys(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "2")
    env = requests.get(srv.url + "/env", timeout=5).json()
    for k in ("wsgi.input", "wsgi.errors", "wsgi.version", "wsgi.url_scheme",
              "wsgi.multiprocess", "wsgi.multithread", "wsgi.run_once", "uwsgi.version",
              "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
              "SERVER_PROTOCOL", "REMOTE_ADDR"):
        assert k in env["keys"], k
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.url_scheme"] == "http"
