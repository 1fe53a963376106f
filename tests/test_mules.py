"""Mules and farms end to end (tests/apps/muleapp.py, mulescript.py, mulefuncs.py): a plain
mule handing messages to the app's hooks, a mule script looping on mule_get_msg(), a mule
callable found on the pythonpath, farms, the errors of the mule API, respawns, process
names and mule-harakiri.

Every receiver appends a JSON line (pid, mule id, message) per message to a file named
after it, so the tests count deliveries per process."""
import json
import os
import signal

import pytest

from conftest import Factory
from helpers import APPS, http_request, recs, wait_recs, wait_until

APP = APPS / "muleapp.py"
SCRIPT = APPS / "mulescript.py"


def wait_msg(out, tag, msg, timeout=10.0):
    """The records of `msg` in `tag` once there is one."""
    return wait_until(lambda: [r for r in recs(out, tag) if r["msg"] == msg], timeout,
                      what="message %r in %r" % (msg, tag))


def get(srv, path, timeout=10.0):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body.decode()


def start(factory, tmp, *extra, name):
    out = tmp / ("out-" + name)
    out.mkdir()
    srv = factory("--master", "--processes", "1", "--http-socket", "127.0.0.1:0",
                  "--wsgi-file", APP, *extra, env=dict(os.environ, MULE_OUT=str(out)),
                  name=name)
    return srv, out


@pytest.fixture(scope="module")
def mules(tmp_path_factory):
    """Mule 1 plain, mule 2 a script, mule 3 a callable; farm solo = mule 2, farm pair =
    mules 1 and 2; auto-procname."""
    tmp = tmp_path_factory.mktemp("mules")
    f = Factory(tmp)
    srv, out = start(f, tmp, "--mules", "1", "--mule=%s" % SCRIPT, "--mule=mulefuncs:loop",
                     "--pythonpath", APPS, "--farm", "solo:2", "--farm", "pair:1,2",
                     "--auto-procname", name="mules")
    # the script reports once its 1 s mule_get_msg(timeout=1) returned
    wait_recs(out, "script-start", 1)
    wait_recs(out, "func-start", 1)
    try:
        yield srv, out
        assert "Traceback" not in srv.log_text(), srv.log_tail()
    finally:
        f.cleanup()


def test_messages_to_each_kind_of_mule(mules):
    srv, out = mules
    assert get(srv, "/send?msg=one&to=1") == "True"
    assert get(srv, "/send?msg=two&to=2") == "True"
    assert get(srv, "/send?msg=three&to=3") == "True"
    # plain mule 1: uwsgi.mule_msg_hook, then the hook of install_mule_msg_hook
    one = wait_msg(out, "hook", "one")
    assert [r["mid"] for r in one] == [1]
    assert [r["mid"] for r in wait_msg(out, "hook2", "one")] == [1]
    # script mule 2, callable mule 3
    assert [r["mid"] for r in wait_msg(out, "script", "two")] == [2]
    assert [r["mid"] for r in wait_msg(out, "func", "three")] == [3]
    # a farm by name: mule_msg(msg, b"solo") reaches mule 2
    assert get(srv, "/send?msg=tosolo&farm=solo") == "True"
    assert [r["mid"] for r in wait_msg(out, "script", "tosolo")] == [2]
    # any mule, and the pair farm: exactly one receiver each
    assert get(srv, "/send?msg=anyone") == "True"
    assert get(srv, "/farm?name=pair&msg=pairmsg") == "None"

    def receivers(msg):
        return [(tag, r["mid"]) for tag in ("hook", "script", "func") for r in recs(out, tag)
                if r["msg"] == msg]

    got = wait_until(lambda: receivers("anyone"), 10, what="the any-mule message")
    got_pair = wait_until(lambda: receivers("pairmsg"), 10, what="the farm message")
    assert got_pair[0][1] in (1, 2), got_pair
    # later messages to every mule arrive after them: nothing was delivered twice
    for to, tag, msg in ((1, "hook", "late1"), (2, "script", "late2"), (3, "func", "late3")):
        assert get(srv, "/send?msg=%s&to=%d" % (msg, to)) == "True"
        wait_msg(out, tag, msg)
    assert len(receivers("anyone")) == 1 and len(got) == 1, receivers("anyone")
    assert len(receivers("pairmsg")) == 1, receivers("pairmsg")


def test_mule_api_inside_mules(mules):
    srv, out = mules
    start_rec = recs(out, "script-start")[0]
    assert start_rec["name"] == "__main__" and start_rec["mid"] == 2
    # mule_get_msg(timeout=1) with nothing queued: b'' after about a second
    assert start_rec["empty"] == "b''" and 0.9 <= start_rec["waited"] < 3, start_rec
    assert start_rec["mule_file"] == repr(str(SCRIPT).encode())
    assert start_rec["in_farm"] == "True" and start_rec["in_solo"] == "True"
    assert start_rec["in_pair"] == "True" and start_rec["in_nope"] == "None"
    assert start_rec["recv_size"] == "65536"
    assert start_rec["register"] == "ValueError: unable to register signal"
    func = recs(out, "func-start")[0]
    assert func["mid"] == 3 and func["mule_file"] == repr(b"mulefuncs:loop")
    # farm_get_msg() in the script reads the solo farm's next message
    assert get(srv, "/send?msg=farmget&to=2") == "True"
    wait_msg(out, "script", "farmget")
    assert get(srv, "/farm?name=solo&msg=F1") == "None"
    assert [r["mid"] for r in wait_msg(out, "script-farm", "F1")] == [2]


def test_programmed_mules_run_signal_handlers_while_waiting(mules):
    """mule_get_msg() (signals=True by default) runs the handlers of the signals that reach
    a mule script or a mule callable while they wait for messages."""
    srv, out = mules
    for n in (6, 7, 8):
        assert get(srv, "/raise?n=%d" % n) == "None"
    assert [r["mid"] for r in wait_recs(out, "sig6", 1)] == [2]
    assert [r["mid"] for r in wait_recs(out, "sig7", 1)] == [3]
    assert [r["mid"] for r in wait_recs(out, "sig8", 1)] == [2]     # farm solo = mule 2
    # and they keep getting their messages afterwards
    assert get(srv, "/send?msg=after-signal&to=2") == "True"
    wait_msg(out, "script", "after-signal")
    assert get(srv, "/send?msg=after-signal&to=3") == "True"
    wait_msg(out, "func", "after-signal")
    # a mule raises a signal: the master routes it to the worker
    assert get(srv, "/send?msg=raise:4&to=2") == "True"
    assert wait_recs(out, "script-raised", 1)[0]["result"] == "None"
    assert [(r["wid"], r["mid"]) for r in wait_recs(out, "sig4", 1)] == [(1, 0)]


def test_mule_api_errors(mules, tmp_path):
    srv, out = mules
    assert get(srv, "/send?msg=x&farm=nofarm") == "ValueError: unknown farm"
    assert get(srv, "/send?msg=x&strtarget=solo") == "ValueError: invalid mule"
    assert get(srv, "/send?msg=x&to=9") == "ValueError: invalid mule"
    assert get(srv, "/farm?name=nofarm&msg=x") == "None"     # silently ignored
    api = json.loads(get(srv, "/worker_api"))
    assert api["mule_get_msg"] == "ValueError: you can receive mule messages only in a mule !!!"
    assert api["farm_get_msg"] == "ValueError: you can receive farm messages only in a mule !!!"
    assert api["in_farm"] == "None" and api["in_farm_solo"] == "None"
    assert api["mule_id"] == "0"
    assert api["mule_file_2"] == repr(str(SCRIPT).encode())
    assert api["mule_file_3"] == repr(b"mulefuncs:loop")
    assert api["mule_file_1"] == "None"                     # a plain mule
    # without mules
    f = Factory(tmp_path)
    try:
        plain, _ = start(f, tmp_path, name="nomules")
        assert get(plain, "/send?msg=x") == "ValueError: no mule configured"
        assert get(plain, "/send?msg=x&to=1") == "ValueError: no mule configured"
    finally:
        f.cleanup()


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as fh:
        return fh.read().replace(b"\0", b" ").strip().decode()


def test_process_names(mules):
    srv, out = mules
    get(srv, "/send?msg=name&to=1")
    m1 = wait_msg(out, "hook", "name")[0]["pid"]
    m2 = recs(out, "script-start")[-1]["pid"]
    m3 = recs(out, "func-start")[-1]["pid"]
    assert cmdline(m1) == "uWSGI mule 1"
    assert cmdline(m2) == "uWSGI mule 2"
    assert cmdline(m3) == "uWSGI mule 3"
    assert cmdline(srv.pid) == "uWSGI master"


def test_mules_respawn(mules):
    srv, out = mules
    # SIGKILL the script mule: it is respawned and serves messages again
    starts = recs(out, "script-start")
    old = starts[-1]["pid"]
    mark = srv.log_len()
    os.kill(old, signal.SIGKILL)
    # a message sent meanwhile waits in mule 2's queue for the new process (whose first
    # call, mule_get_msg(timeout=1) in the script's report, gets it)
    assert get(srv, "/send?msg=while-dead&to=2") == "True"
    srv.wait_log(r"Respawned ruwsgi mule 2", start=mark)
    fresh = wait_recs(out, "script-start", len(starts) + 1)[-1]
    new = fresh["pid"]
    assert new != old
    assert fresh["empty"] == repr(b"while-dead") or \
        [r["pid"] for r in wait_msg(out, "script", "while-dead")] == [new], fresh
    assert get(srv, "/send?msg=after-kill&to=2") == "True"
    assert [r["pid"] for r in wait_msg(out, "script", "after-kill")] == [new]
    # signals for mule 2 reach the new process
    n6 = len(recs(out, "sig6"))
    assert get(srv, "/raise?n=6") == "None"
    assert wait_recs(out, "sig6", n6 + 1)[-1]["pid"] == new
    # the plain mule too
    get(srv, "/send?msg=who&to=1")
    plain = wait_msg(out, "hook", "who")[0]["pid"]
    mark = srv.log_len()
    os.kill(plain, signal.SIGKILL)
    srv.wait_log(r"Respawned ruwsgi mule 1", start=mark)
    assert get(srv, "/send?msg=after-kill-1&to=1") == "True"
    got = wait_msg(out, "hook", "after-kill-1")
    assert got[0]["pid"] != plain and got[0]["mid"] == 1
    assert get(srv, "/raise?n=5") == "None"
    assert wait_recs(out, "sig5", 1)[-1]["pid"] == got[0]["pid"]
    # a script that returns ends its mule, which is respawned and runs the script again
    n = len(recs(out, "script-start"))
    mark = srv.log_len()
    assert get(srv, "/send?msg=return&to=2") == "True"
    again = wait_recs(out, "script-start", n + 1)[-1]
    assert again["pid"] != new and again["mid"] == 2
    srv.wait_log(r"Respawned ruwsgi mule 2", start=mark)
    assert get(srv, "/send?msg=after-return&to=2") == "True"
    assert [r["pid"] for r in wait_msg(out, "script", "after-return")] == [again["pid"]]


def test_harakiri_of_signal_handlers(ruwsgi, tmp_path):
    """A plain mule whose signal handler runs past mule-harakiri is killed and respawned;
    so is a worker whose handler runs past harakiri."""
    srv, out = start(ruwsgi, tmp_path, "--mules", "1", "--mule-harakiri", "1",
                     "--harakiri", "1", name="mh")
    (out / "slow").touch()
    assert get(srv, "/raise?n=5") == "None"
    first = wait_recs(out, "sig5", 1)[0]
    assert first["mid"] == 1
    srv.wait_log(r"HARAKIRI.*mule 1", timeout=6)
    srv.wait_log(r"mule 1 \(pid: %d\) killed by harakiri" % first["pid"], timeout=6)
    srv.wait_log(r"Respawned ruwsgi mule 1", timeout=10)
    assert recs(out, "sig5-survived") == []
    # the new mule handles the signal (quickly this time)
    (out / "slow").unlink()
    assert get(srv, "/raise?n=5") == "None"
    second = wait_recs(out, "sig5", 2)[1]
    assert second["pid"] != first["pid"] and second["mid"] == 1
    # a worker's handler (signal 9 for worker 1) under harakiri
    (out / "slow").touch()
    mark = srv.log_len()
    assert get(srv, "/raise?n=9") == "None"
    w = wait_recs(out, "sig9", 1)[0]
    assert w["mid"] == 0
    srv.wait_log(r"HARAKIRI.*worker 1", timeout=6, start=mark)
    srv.wait_log(r"worker 1 \(pid: %d\) killed by harakiri" % w["pid"], timeout=6, start=mark)
    (out / "slow").unlink()
    wait_until(lambda: get(srv, "/") == "ok", 10, what="worker 1 serving again")
    # the new worker 1 gets the signal
    assert get(srv, "/raise?n=9") == "None"
    again = wait_recs(out, "sig9", 2)[1]
    assert again["pid"] != w["pid"] and again["wid"] == 1
    assert recs(out, "sig9-survived") == [] and recs(out, "sig5-survived") == []
