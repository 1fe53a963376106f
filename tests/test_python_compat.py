"""Python plugin behaviour that must match uWSGI: mountpoints, uwsgi.workers() apps, app
threads while the worker is idle, request-log dates in local time."""
import calendar
import os
import re
import textwrap
import threading
import time

import pytest
import requests

from helpers import wait_until

SCRIPT_APP = textwrap.dedent("""\
    import json
    NAME = %r
    def application(environ, start_response):
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps([NAME, environ.get('SCRIPT_NAME', ''),
                            environ['PATH_INFO']]).encode()]
    """)


def write(path, text):
    path.write_text(text)
    return str(path)


def get_json(srv, path, session=None):
    r = (session or requests).get(srv.url + path, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


# --------------------------------------------------------------------------- mountpoints

def test_trailing_slash_mountpoint_keeps_its_slash(ruwsgi, tmp_path):
    default = write(tmp_path / "default_app.py", SCRIPT_APP % "default")
    foo = write(tmp_path / "foo_app.py", SCRIPT_APP % "foo")
    foobis = write(tmp_path / "foobis_app.py", SCRIPT_APP % "foobis")
    conf = tmp_path / "mounts.ini"
    conf.write_text(textwrap.dedent("""\
        [uwsgi]
        http-socket = 127.0.0.1:0
        wsgi-file = %s
        mount = /foo=%s
        mount = /foobis/=%s
        manage-script-name = true
        """) % (default, foo, foobis))
    srv = ruwsgi("--ini", conf)
    # SCRIPT_NAME is the mountpoint as written; PATH_INFO what follows the mountpoint
    # without its slash (uWSGI 2.1's rule; 2.0.30 also strips the slash, giving PATH_INFO
    # "resource", and reads past PATH_INFO for "/foobis").
    assert get_json(srv, "/foobis") == ["foobis", "/foobis/", ""]
    assert get_json(srv, "/foobis/") == ["foobis", "/foobis/", "/"]
    assert get_json(srv, "/foobis/resource") == ["foobis", "/foobis/", "/resource"]
    assert get_json(srv, "/foo/x") == ["foo", "/foo", "/x"]
    # Not under a mountpoint: the default app, untouched.
    assert get_json(srv, "/foobisis/") == ["default", "", "/foobisis/"]
    assert get_json(srv, "/fooanything") == ["default", "", "/fooanything"]


# --------------------------------------------------------------------------- uwsgi.workers()

WORKERS_APP = textwrap.dedent("""\
    import json
    import time
    import uwsgi

    def plain(value):
        if isinstance(value, bytes):
            return {'bytes': value.decode('latin-1')}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    def application(environ, start_response):
        if environ['PATH_INFO'] == '/fail':
            raise RuntimeError('counted as an exception')
        if environ['PATH_INFO'] == '/slow':
            time.sleep(0.5)
        body = {'worker_id': uwsgi.worker_id(), 'callable': id(application),
                'workers': plain(uwsgi.workers())}
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(body).encode()]
    """)

APP_INT_KEYS = ("id", "modifier1", "startup_time", "interpreter", "callable", "requests",
                "exceptions")


def start_workers_server(ruwsgi, tmp_path, processes, *extra):
    main = write(tmp_path / "workers_app.py", WORKERS_APP)
    other = write(tmp_path / "other_app.py", SCRIPT_APP % "other")
    return ruwsgi("--http-socket", "127.0.0.1:0", "--master", "--processes", processes,
                  "--wsgi-file", main, "--mount", "/other/=%s" % other,
                  "--manage-script-name", *extra, ready_path="/other/")


def own_apps(facts):
    (me,) = [w for w in facts["workers"] if w["id"] == facts["worker_id"]]
    return me["apps"]


def test_workers_lists_apps_with_counters(ruwsgi, tmp_path):
    srv = start_workers_server(ruwsgi, tmp_path, 1)
    s = requests.Session()
    before = own_apps(get_json(srv, "/", session=s))
    for path in ["/", "/", "/other/x", "/other/y"]:
        assert s.get(srv.url + path, timeout=10).status_code == 200
    try:
        # ruwsgi answers 500; uWSGI closes the connection.
        requests.get(srv.url + "/fail", timeout=10)
    except requests.ConnectionError:
        pass
    facts = get_json(srv, "/", session=s)
    apps = own_apps(facts)
    assert [a["id"] for a in apps] == [0, 1], apps
    for a in apps:
        assert sorted(a) == sorted(APP_INT_KEYS + ("mountpoint", "chdir")), a
        assert all(type(a[k]) is int for k in APP_INT_KEYS), a
        assert a["modifier1"] == 0 and a["chdir"] == {"bytes": ""}, a
        assert a["startup_time"] >= 0 and a["interpreter"] != 0, a
    main, other = apps
    assert main["mountpoint"] == {"bytes": ""}
    assert other["mountpoint"] == {"bytes": "/other/"}
    assert main["callable"] == facts["callable"]
    # One worker serves everything; the asking request counts itself.
    delta = [(a["requests"] - b["requests"], a["exceptions"] - b["exceptions"])
             for a, b in zip(apps, before)]
    assert delta == [(2 + 1 + 1, 1), (2, 0)], (before, apps)


def app_entries(facts, wid):
    """Worker `wid`'s apps as `facts` (one response) shows them: main app, other app."""
    (w,) = [w for w in facts["workers"] if w["id"] == wid]
    apps = w["apps"]
    assert [a["mountpoint"] for a in apps] == [{"bytes": ""}, {"bytes": "/other/"}], w
    assert [a["id"] for a in apps] == [0, 1], w
    return apps


@pytest.mark.parametrize("lazy", [False, True], ids=["preload", "lazy-apps"])
def test_other_workers_apps_are_visible(ruwsgi, tmp_path, lazy):
    """Every worker's apps, with that worker's own counters, as uWSGI shows them: each
    response lists both workers' apps, and the main app's request count of each worker is
    what that worker answered (plus at most the one request still in flight)."""
    srv = start_workers_server(ruwsgi, tmp_path, 2, *(["--lazy-apps"] if lazy else []))
    srv.wait_children(2)
    # With lazy-apps each worker imports the apps itself, so one may still be importing
    # when the other answers: wait until both have published, and start counting from
    # what they served meanwhile (an answer counts its own request).
    last = {}

    def both_published():
        last["facts"] = get_json(srv, "/")
        return all(len(w["apps"]) == 2 for w in last["facts"]["workers"])

    wait_until(both_published, 30, what="both workers' apps published")
    served = {w["id"]: w["apps"][0]["requests"] for w in last["facts"]["workers"]}
    # Worker X answered while the other had served some: X's view of it was checked.
    seen_other = {1: False, 2: False}

    def check(facts, counted=True):
        me = facts["worker_id"]
        served[me] += 1
        for wid in (1, 2):
            main, _ = app_entries(facts, wid)
            # Only the slow request can be answered, or in flight, and not yet counted here.
            if counted:
                assert served[wid] <= main["requests"] <= served[wid] + 1, (wid, served, facts)
            assert main["exceptions"] == 0, facts
            assert main["interpreter"] != 0, facts
            # Addresses are each worker's own: with preloaded apps both are the object
            # forked from the master; with lazy apps only the answering worker's is known.
            if wid == me or not lazy:
                assert main["callable"] == facts["callable"], (wid, facts)
        if counted and served[3 - me] > 0:
            seen_other[me] = True

    # A worker busy in a slow request accepts nothing meanwhile, so the requests sent then
    # reach the other one; repeat until each worker has shown the other's served requests.
    deadline = time.monotonic() + 60
    while not all(seen_other.values()):
        assert time.monotonic() < deadline, (served, seen_other)
        slow = []
        t = threading.Thread(target=lambda: slow.append(get_json(srv, "/slow")))
        t.start()
        while t.is_alive():
            check(get_json(srv, "/"))
        t.join()
        assert len(slow) == 1
        # Its view was taken while requests to the other worker went on: counted, not checked.
        check(slow[0], counted=False)

    # Nothing in flight now: counts are exact, and an exception is counted by its worker.
    try:
        # ruwsgi answers 500; uWSGI closes the connection.
        requests.get(srv.url + "/fail", timeout=10)
    except requests.ConnectionError:
        pass
    facts = get_json(srv, "/")
    served[facts["worker_id"]] += 1
    mains = [app_entries(facts, wid)[0] for wid in (1, 2)]
    assert sum(m["exceptions"] for m in mains) == 1, facts
    failed = [m["exceptions"] for m in mains].index(1) + 1
    served[failed] += 1
    assert [m["requests"] for m in mains] == [served[1], served[2]], (served, facts)


# --------------------------------------------------------------------------- app threads

TICKER = textwrap.dedent("""\
    import threading
    import time
    import uwsgi
    count = 0

    def tick():
        global count
        while True:
            count += 1
            time.sleep(0.01)

    def start():
        threading.Thread(target=tick, daemon=True).start()

    %s

    def application(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(count).encode()]
    """)


def assert_ticks_while_idle(srv):
    first = int(requests.get(srv.url, timeout=10).text)
    seen = []

    def advanced():
        # One request a second: between them the worker is idle in its wait for clients.
        seen.append(int(requests.get(srv.url, timeout=10).text))
        return seen[-1] - first > 20

    wait_until(advanced, timeout=10, interval=1.0, what="the app thread to tick while idle")
    # About 100 ticks a second when it runs; a held interpreter gives at most a few.
    assert seen[-1] - first > 20, (first, seen)


def test_import_time_thread_runs_while_idle_lazy_apps(ruwsgi, tmp_path):
    app = write(tmp_path / "ticker_lazy.py", TICKER % "start()")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--lazy-apps",
                 "--processes", "1", "--threads", "1")
    assert_ticks_while_idle(srv)


def test_post_fork_thread_runs_while_idle(ruwsgi, tmp_path):
    # Preloaded apps are imported before fork, so a thread they start stays in the master
    # (as with uWSGI); post_fork_hook starts one in the worker.
    app = write(tmp_path / "ticker_fork.py", TICKER % "uwsgi.post_fork_hook = start")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--master",
                 "--processes", "1", "--threads", "1")
    assert_ticks_while_idle(srv)


# --------------------------------------------------------------------------- request log

HELLO = textwrap.dedent("""\
    def application(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'hello']
    """)

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]    # time.struct_time.tm_wday order
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
KOLKATA = 5 * 3600 + 1800


def kolkata_tz():
    # The zone database when installed; else the same fixed +05:30 zone in POSIX form.
    return "Asia/Kolkata" if os.path.exists("/usr/share/zoneinfo/Asia/Kolkata") else "IST-5:30"


def around(t0, t1):
    return range(int(t0) - 1, int(t1) + 2)


def ctime_at(secs, offset):
    t = time.gmtime(secs + offset)
    return "%s %s %2d %02d:%02d:%02d %d" % (DAYS[t.tm_wday], MONTHS[t.tm_mon - 1], t.tm_mday,
                                            t.tm_hour, t.tm_min, t.tm_sec, t.tm_year)


def apache_at(secs, offset):
    t = time.gmtime(secs + offset)
    sign = "-" if offset < 0 else "+"
    return "%02d/%s/%d:%02d:%02d:%02d %s%02d%02d" % (
        t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec, sign,
        abs(offset) // 3600, abs(offset) % 3600 // 60)


def test_request_log_date_is_local_time(ruwsgi, tmp_path):
    app = write(tmp_path / "hello_tz.py", HELLO)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--master",
                 "--processes", "1", env={"TZ": kolkata_tz()})
    t0 = time.time()
    assert requests.get(srv.url + "/tz-probe", timeout=10).status_code == 200
    t1 = time.time()
    (m,) = srv.wait_log(r"\} \[([^\]]+)\] GET /tz-probe ")
    logged = m.group(1)
    assert logged in {ctime_at(s, KOLKATA) for s in around(t0, t1)}, logged
    # ... which is not what UTC would show.
    assert logged not in {ctime_at(s, 0) for s in around(t0, t1)}, logged
    assert calendar.timegm(time.strptime(logged, "%a %b %d %H:%M:%S %Y")) - KOLKATA in \
        around(t0, t1)


def test_log_format_ltime_and_ctime_are_local(ruwsgi, tmp_path):
    app = write(tmp_path / "hello_fmt.py", HELLO)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app,
                 "--log-format", "fmt <%(ltime)> <%(ctime)> %(uri)",
                 env={"TZ": kolkata_tz()})
    t0 = time.time()
    requests.get(srv.url + "/fmt-probe", timeout=10)
    t1 = time.time()
    (m,) = srv.wait_log(r"^fmt <([^>]+)> <([^>]+)> /fmt-probe$")
    assert m.group(1) in {apache_at(s, KOLKATA) for s in around(t0, t1)}, m.group(0)
    assert m.group(1).endswith(" +0530")
    assert m.group(2) in {ctime_at(s, KOLKATA) for s in around(t0, t1)}, m.group(0)


def test_request_log_date_in_utc_when_tz_is_utc(ruwsgi, tmp_path):
    app = write(tmp_path / "hello_utc.py", HELLO)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, env={"TZ": "UTC"})
    t0 = time.time()
    requests.get(srv.url + "/utc-probe", timeout=10)
    t1 = time.time()
    (m,) = srv.wait_log(r"\} \[([^\]]+)\] GET /utc-probe ")
    assert m.group(1) in {ctime_at(s, 0) for s in around(t0, t1)}, m.group(1)


def test_request_log_line_shape_is_unchanged(ruwsgi, tmp_path):
    app = write(tmp_path / "hello_shape.py", HELLO)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, env={"TZ": kolkata_tz()})
    requests.get(srv.url + "/shape", timeout=10)
    (m,) = srv.wait_log(r"^\[pid: \d+\|app: \d+\|req: \d+/\d+\] .*GET /shape .*$")
    assert re.search(r"\} \[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] GET", m.group(0)), \
        m.group(0)
