"""The uWSGI signal framework end to end (tests/apps/signalapp.py): routing to every target
kind, registration rules, signal_wait / signal_received, timers, rb timers, ms timers,
signal crons, file monitors, touch-signal, remote signals (modifier1 110) in both directions
with real uWSGI, and signals to every worker while the workers are under load.

Each handler appends a JSON line per run to a file named after its target, with the pid,
worker id and mule id of the process that ran it: the tests count runs per process."""
import json
import os
import socket
import struct
import threading
import time
from urllib.parse import quote

import pytest

from conftest import Factory
from helpers import (APPS, free_port, http_request, start_uwsgi, tcp_addr, unix_addr,
                     wait_until)
from load import run_load

APP = APPS / "signalapp.py"


def runs(out, tag):
    p = out / tag
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def wait_runs(out, tag, n, timeout=10.0):
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(runs(out, tag)), timeout,
                      what="%d run(s) of the %r handler (have %d)" % (n, tag, len(runs(out, tag))))


def get(srv, path, timeout=10.0):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body.decode()


def start(factory, tmp, *extra, profile="targets", name, processes=2, env=None):
    out = tmp / ("out-" + name)
    out.mkdir()
    e = dict(os.environ, SIG_OUT=str(out), SIG_PROFILE=profile)
    e.update(env or {})
    srv = factory("--master", "--processes", processes, "--http-socket", "127.0.0.1:0",
                  "--wsgi-file", APP, *extra, env=e, name=name)
    return srv, out


# --------------------------------------------------------------------------- targets

@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """2 workers, 2 plain mules (farm alpha = mule 1, farm beta = mule 2), one spooler."""
    tmp = tmp_path_factory.mktemp("targets")
    f = Factory(tmp)
    srv, out = start(f, tmp, "--mules", "2", "--farm", "alpha:1", "--farm", "beta:2",
                     "--spooler", tmp / "spool", name="targets")
    srv.wait_children(5)
    try:
        yield srv, out
        assert "DAMN" not in srv.log_text(), srv.log_tail()
    finally:
        f.cleanup()


def test_signals_reach_every_target_kind(targets):
    srv, out = targets
    for n in (10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20):
        assert get(srv, "/raise?n=%d" % n) == "None"

    def who(tag, n):
        return sorted((r["wid"], r["mid"], r["spooler"]) for r in wait_runs(out, tag, n))

    # every worker / every mule: once each, in distinct processes
    assert who("workers", 2) == [(1, 0, False), (2, 0, False)]
    assert who("active", 2) == [(1, 0, False), (2, 0, False)]
    assert who("mules", 2) == [(0, 1, False), (0, 2, False)]
    assert len({r["pid"] for r in runs(out, "workers")}) == 2
    assert len({r["pid"] for r in runs(out, "mules")}) == 2
    # one chosen process
    assert who("worker2", 1) == [(2, 0, False)]
    assert who("mule2", 1) == [(0, 2, False)]
    assert who("farm_alpha", 1) == [(0, 1, False)]     # farm by name: alpha = mule 1
    assert who("farm2", 1) == [(0, 2, False)]          # farm by number: 2 = beta = mule 2
    assert who("spooler", 1) == [(0, 0, True)]
    # any worker / any mule: exactly one of them
    assert who("any", 1)[0][0] in (1, 2)
    assert who("worker", 1)[0][0] in (1, 2)
    assert who("mule", 1)[0][1] in (1, 2)
    # every handler above ran (so the master routed everything raised before): the shared
    # targets were handled once, not once per worker or mule
    for tag in ("any", "worker", "mule", "worker2", "mule2", "farm_alpha", "farm2", "spooler"):
        assert len(runs(out, tag)) == 1, (tag, runs(out, tag))
    for tag in ("workers", "active", "mules"):
        assert len(runs(out, tag)) == 2, (tag, runs(out, tag))


def test_unregistered_signal_and_raising_handler_are_logged(targets):
    srv, out = targets
    start_at = srv.log_len()
    assert get(srv, "/raise?n=99") == "None"           # always None, even when dropped
    srv.wait_log(r"signal 99 from worker \d is not registered: dropped", start=start_at)
    assert get(srv, "/raise?n=50") == "None"
    wait_runs(out, "raising", 1)
    srv.wait_log(r"RuntimeError: handler of 50 fails", start=start_at)
    srv.wait_log(r"error managing signal 50 on worker [12]", start=start_at)
    # the worker survived its handler's exception and still serves
    assert get(srv, "/") == "ok"


def test_registration_rules(targets):
    srv, _ = targets
    reg = json.loads(get(srv, "/reg"))
    for n in (10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 31, 32, 33, 34, 50):
        assert reg[str(n)] == "None", (n, reg)
    # the master cannot register a number twice; targets are checked and at most 63 long
    assert reg["again"] == "ValueError: unable to register signal"
    assert reg["bad_target"] == "ValueError: unable to register signal"
    assert reg["long_target"] == "ValueError: unable to register signal"
    assert reg["registered_10"] == "True" and reg["registered_99"] == "None"
    log = srv.log_text()
    assert "cannot register signal 10: signal 10 is already registered" in log
    assert "cannot register signal 60: unsupported signal target 'nonsense'" in log
    # the workers inherited the master's table
    for _ in range(4):
        assert get(srv, "/registered?n=10") == "True"
        assert get(srv, "/registered?n=99") == "None"
        assert get(srv, "/registered?n=60") == "None"   # its registration failed
    # from a worker: a long or unknown target is refused the same way
    long_target = "worker" + "1" * 58
    assert get(srv, "/register?n=62&target=" + long_target) == \
        "ValueError: unable to register signal"
    assert get(srv, "/register?n=62&target=nowhere") == "ValueError: unable to register signal"


def wait_in_background(srv, path):
    box = {}

    def run():
        try:
            box["r"] = http_request(srv.http.target, "GET", path, timeout=20)
        except OSError as e:
            box["e"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def waiting_worker(out):
    names = wait_until(lambda: [p.name for p in out.glob("waiting-*")], 10,
                       what="a request blocked in signal_wait")
    return int(names[0].split("-")[1])


def finish(t, box):
    t.join(20)
    assert not t.is_alive(), "signal_wait never returned"
    assert "e" not in box, box
    r = box["r"]
    assert r.status == 200, r
    return json.loads(r.body)


def test_signal_wait_and_signal_received(targets):
    """A request blocks in signal_wait(); a request on the other worker raises the signal
    registered for the waiting worker: signal_wait runs its handler and returns b'', and
    signal_received() tells its number."""
    srv, out = targets
    t, box = wait_in_background(srv, "/wait")
    wid = waiting_worker(out)
    assert get(srv, "/raise_other?base=31") == "None"
    res = finish(t, box)
    want = 31 if wid == 1 else 32
    assert res == {"wid": wid, "before": 0, "returned": "b''", "received": want}
    ran = [r for r in runs(out, "wait") if r["sig"] == want]
    assert len(ran) == 1 and ran[0]["wid"] == wid

    # signal_wait(N) runs the handlers of other signals while it waits for N
    t, box = wait_in_background(srv, "/wait?n=1")
    wid = waiting_worker(out)
    assert get(srv, "/raise_other?base=33&first=31") == "None"
    res = finish(t, box)
    first, want = (31, 33) if wid == 1 else (32, 34)
    assert res["received"] == want and res["returned"] == "b''" and res["before"] == 0, res
    mine = [r["sig"] for r in runs(out, "wait") if r["wid"] == wid]
    assert mine[-2:] == [first, want], mine


def test_a_busy_worker_runs_its_signal_after_its_request(targets):
    """A signal for every worker reaches a worker busy with a request too: its handler runs
    once the request is over."""
    srv, out = targets
    t, box = wait_in_background(srv, "/slow?s=1.5")
    # The app writes its marker through a temporary file: only finished names count.
    busy = int(wait_until(
        lambda: [p.name for p in out.glob("slow-*") if not p.name.endswith(".tmp")], 10,
        what="a worker in /slow")[0].split("-")[1])
    assert get(srv, "/raise?n=21") == "None"
    first = wait_runs(out, "busy", 1)
    assert first[0]["wid"] == 3 - busy        # the idle worker at once
    res = finish(t, box)
    assert res["wid"] == busy
    ran = wait_runs(out, "busy", 2)
    late = [r for r in ran if r["wid"] == busy]
    assert len(late) == 1 and late[0]["t"] >= res["end"], (ran, res)


def test_signals_registered_in_lazy_workers(ruwsgi, tmp_path):
    """With lazy-apps each worker registers the signals itself (the master has none): a
    worker may register a number again (its own entry is overwritten), and the signals
    reach the targets the workers gave."""
    srv, out = start(ruwsgi, tmp_path, "--lazy-apps", name="lazy")
    srv.wait_children(2)
    reg = json.loads(get(srv, "/reg"))
    assert reg["10"] == "None" and reg["again"] == "None", reg
    assert reg["long_target"] == "ValueError: unable to register signal"
    for n in (10, 11, 12):
        assert get(srv, "/raise?n=%d" % n) == "None"
    assert sorted(r["wid"] for r in wait_runs(out, "workers", 2)) == [1, 2]
    assert [r["wid"] for r in wait_runs(out, "worker2", 1)] == [2]
    # signal 10 ran the handler that replaced the first one, in one worker
    assert len(wait_runs(out, "again", 1)) == 1 and runs(out, "any") == []
    assert len(runs(out, "again")) == 1 and len(runs(out, "workers")) == 2


# --------------------------------------------------------------------------- timers & co

def test_timers_file_monitor_and_touch_signal(ruwsgi, tmp_path):
    watched = tmp_path / "watched"
    watched.write_text("x")
    touched = tmp_path / "touchme"
    touched.write_text("x")
    srv, out = start(ruwsgi, tmp_path, "--timer", "43 1", "--rbtimer", "44 1",
                     "--touch-signal", "%s 46" % touched, profile="timers", processes=1,
                     name="timers")
    reg = json.loads(get(srv, "/reg"))
    for k in ("40", "41", "42", "43", "44", "45", "46", "47", "add_timer", "add_rb_timer",
              "add_ms_timer", "add_file_monitor"):
        assert reg[k] == "None", (k, reg)
    assert reg["add_cron"] == "True"
    assert reg["long_monitor"] == "ValueError: unable to add file monitor"

    # the timers fire repeatedly, at their period
    timer = wait_runs(out, "timer", 1, timeout=5)
    # a timer firing means the master armed what the app registered: the file monitor too
    os.utime(watched, (time.time() + 5, time.time() + 5))
    wait_runs(out, "filemon", 1, timeout=5)
    timer = wait_runs(out, "timer", 3, timeout=6)
    gaps = [b["t"] - a["t"] for a, b in zip(timer, timer[1:])]
    assert all(0.6 < g < 1.6 for g in gaps), gaps
    ms = wait_runs(out, "mstimer", 8, timeout=5)
    period = (ms[-1]["t"] - ms[0]["t"]) / (len(ms) - 1)
    assert 0.12 < period < 0.35, period
    wait_runs(out, "cfg_timer", 2, timeout=5)
    wait_runs(out, "cfg_rbtimer", 2, timeout=5)

    # touch-signal: nothing until the file's mtime changes, then once
    assert runs(out, "touch") == []
    os.utime(touched, (time.time() + 10, time.time() + 10))
    wait_runs(out, "touch", 1, timeout=5)

    # the rb timer (1 s, 3 iterations) fires exactly 3 times
    rb = wait_runs(out, "rbtimer", 3, timeout=6)
    gaps = [b["t"] - a["t"] for a, b in zip(rb, rb[1:])]
    assert all(0.5 < g < 1.8 for g in gaps), gaps
    # a 4th would come 1 s after the 3rd: give it 1.5 s, while the 1 s timer runs twice
    seen = len(runs(out, "timer"))
    wait_runs(out, "timer", seen + 2, timeout=4)
    assert time.time() - rb[-1]["t"] >= 1.5
    assert len(runs(out, "rbtimer")) == 3, runs(out, "rbtimer")
    # one touch, one run each
    assert len(runs(out, "touch")) == 1
    assert len(runs(out, "filemon")) >= 1
    assert "DAMN" not in srv.log_text()


@pytest.mark.parametrize("kind", ["ruwsgi", "uwsgi"])
def test_cron_matching_every_minute_fires_at_once(ruwsgi, tmp_path, kind):
    """A signal cron (add_cron) and a command cron (`cron` option) whose fields are all -1
    match every minute: the master fires them on its first check, within a second or two
    of their registration, not at the start of the next minute (uWSGI, the reference, is
    run as well). Later firings (at most once per 60 s) are not waited for."""
    out = tmp_path / "out"
    out.mkdir()
    cmd_out = tmp_path / "cmd.out"
    args = ["--master", "--processes", "1", "--http-socket", "127.0.0.1:0", "--wsgi-file", APP,
            "--cron", "-1 -1 -1 -1 -1 date +%%s.%%N >> %s" % cmd_out]
    env = dict(os.environ, SIG_OUT=str(out), SIG_PROFILE="timers")
    t0 = time.time()
    if kind == "ruwsgi":
        srv = ruwsgi(*args, env=env)
    else:
        srv = start_uwsgi(args, tmp_path / "uwsgi", env=env)
        ruwsgi.servers.append(srv)
    try:
        wait_runs(out, "cron", 1, timeout=5)
        wait_until(lambda: cmd_out.exists() and cmd_out.read_text().strip(), 5,
                   what="the cron command's output")
    finally:
        elapsed = time.time() - t0
        srv.kill()
    assert elapsed < 10


def test_cron2_harakiri_and_unique_cron(ruwsgi, tmp_path):
    """`cron2` with `harakiri=1`: the master kills a run that lasts longer and logs it;
    `unique-cron` starts its command (an every-minute entry fires at once) and logs its
    start; both runs are reaped and logged when they end."""
    marker = tmp_path / "unique.out"
    srv = ruwsgi("--master", "--processes", "1", "--http-socket", "127.0.0.1:0",
                 "--wsgi-file", APP,
                 "--cron2", "minute=-1,harakiri=1 sleep 30",
                 "--unique-cron", "-1 -1 -1 -1 -1 echo once >> %s" % marker,
                 env=dict(os.environ, SIG_OUT=str(tmp_path), SIG_PROFILE="timers"))
    srv.wait_log(r'\[ruwsgi-cron\] running "sleep 30" \(pid \d+\)', timeout=5)
    srv.wait_log(r'\[ruwsgi-cron\] command "sleep 30" \(pid \d+\) ran past its harakiri: killed',
                 timeout=5)
    srv.wait_log(r'\[ruwsgi-cron\] command "sleep 30" \(pid \d+\) ended: signal 9', timeout=5)
    wait_until(lambda: marker.exists() and marker.read_text() == "once\n", 5,
               what="the unique cron's output")
    srv.wait_log(r'\[ruwsgi-cron\] command "echo once >> .*" \(pid \d+\) ended: exit status 0',
                 timeout=5)


# --------------------------------------------------------------------------- remote signals

@pytest.fixture(scope="module")
def remote_pair(tmp_path_factory):
    """A ruwsgi and a uWSGI instance, each with uwsgi sockets (TCP, unix) and the targets profile
    (2 workers: one raising a signal on its own node leaves the other to answer), each able
    to raise signals on the other; --socket-timeout 2."""
    tmp = tmp_path_factory.mktemp("remote")
    f = Factory(tmp)
    servers = {}
    try:
        for kind in ("ruwsgi", "uwsgi"):
            out = tmp / ("out-" + kind)
            out.mkdir()
            args = ["--master", "--processes", "2", "--http-socket", "127.0.0.1:0",
                    "--socket", "127.0.0.1:0", "--socket", tmp / ("%s.sock" % kind),
                    "--socket-timeout", "2", "--wsgi-file", APP]
            env = dict(os.environ, SIG_OUT=str(out), SIG_PROFILE="targets")
            if kind == "ruwsgi":
                srv = f(*args, env=env, name=kind)
            else:
                srv = start_uwsgi(args, tmp / kind, name=kind, env=env)
                f.servers.append(srv)
            servers[kind] = (srv, out)
        yield servers
    finally:
        f.cleanup()


@pytest.mark.parametrize("caller,node", [("ruwsgi", "uwsgi"), ("uwsgi", "ruwsgi"),
                                         ("ruwsgi", "ruwsgi"), ("uwsgi", "uwsgi")],
                         ids=["ruwsgi->uwsgi", "uwsgi->ruwsgi", "ruwsgi->ruwsgi",
                              "uwsgi->uwsgi"])
@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_remote_signal(remote_pair, caller, node, via):
    csrv, _ = remote_pair[caller]
    nsrv, nout = remote_pair[node]
    before = len(runs(nout, "workers"))
    addr = tcp_addr(nsrv) if via == "tcp" else str(unix_addr(nsrv))
    body = get(csrv, "/raise?n=11&node=" + quote(addr))
    assert body.startswith("None "), body
    ran = wait_runs(nout, "workers", before + 2)[before:]
    # the node routed it to each of its own workers
    assert sorted(r["wid"] for r in ran) == [1, 2] and {r["sig"] for r in ran} == {11}, ran
    assert {r["pid"] for r in ran} <= set(nsrv.children()), ran


def signal_packet(addr, num, payload=b""):
    """Send a modifier1 110 packet raising `num`; the 4-byte reply (b"" if closed first)."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(struct.pack("<BHB", 110, len(payload), num) + payload)
        data = b""
        while len(data) < 4:
            got = s.recv(4 - len(data))
            if not got:
                break
            data += got
        return data


@pytest.mark.parametrize("node", ["ruwsgi", "uwsgi"])
def test_raw_signal_packet(remote_pair, node):
    """modifier1 110, signal number in modifier2: queued to the master, answered FF 00 00 01;
    a payload is accepted and ignored."""
    nsrv, nout = remote_pair[node]
    addr = ("127.0.0.1", int(tcp_addr(nsrv).rsplit(":", 1)[1]))
    before = len(runs(nout, "workers"))
    assert signal_packet(addr, 11) == b"\xff\x00\x00\x01"
    wait_runs(nout, "workers", before + 2)
    assert signal_packet(addr, 11, b"ignored payload") == b"\xff\x00\x00\x01"
    ran = wait_runs(nout, "workers", before + 4)[before:]
    assert sorted(r["wid"] for r in ran) == [1, 1, 2, 2], ran


@pytest.mark.parametrize("caller", ["ruwsgi", "uwsgi"])
def test_remote_signal_undeliverable_is_ioerror(remote_pair, caller):
    csrv, _ = remote_pair[caller]
    # nobody listens: refused at once
    port = free_port()
    body = get(csrv, "/raise?n=11&node=127.0.0.1:%d" % port)
    msg, took = body.rsplit(" (", 1)
    assert msg == "OSError: unable to deliver signal 11 to node 127.0.0.1:%d" % port, body
    assert float(took.split()[0]) < 2.0
    # a peer that accepts and never answers: given up after the socket timeout (2 s)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        p = silent.getsockname()[1]
        body = get(csrv, "/raise?n=11&node=127.0.0.1:%d" % p, timeout=15)
    msg, took = body.rsplit(" (", 1)
    assert msg == "OSError: unable to deliver signal 11 to node 127.0.0.1:%d" % p, body
    assert 1.5 <= float(took.split()[0]) < 6.0, body


# --------------------------------------------------------------------------- under load

def test_signals_to_every_worker_under_load(ruwsgi, tmp_path):
    """A 100 ms timer raises a signal to every worker while 2 workers serve a steady load:
    no request fails, and each worker runs a fair share of the handlers."""
    srv, out = start(ruwsgi, tmp_path, profile="load", name="load")
    assert json.loads(get(srv, "/reg")) == {"70": "None", "add_ms_timer": "None"}
    wait_runs(out, "load", 4, timeout=5)   # the timer runs
    t0 = time.time()
    duration = 10.0
    res = run_load(srv.addr, "/", connections=6, duration=duration, keepalive=True)
    t1 = time.time()
    assert res.errors == 0 and res.non2xx == 0, res.summary()
    assert res.ok > 100, res.summary()
    expected = (t1 - t0) / 0.1
    during = [r for r in runs(out, "load") if t0 <= r["t"] <= t1 + 0.2]
    per_worker = {w: sum(1 for r in during if r["wid"] == w) for w in (1, 2)}
    # `workers`: each worker handles every signal (some may fall just past the window).
    for w, n in per_worker.items():
        assert n >= 0.8 * expected, (w, n, expected, res.summary())
    assert "SIGNAL QUEUE IS FULL" not in srv.log_text()


@pytest.mark.parametrize("kind", ["ruwsgi", "uwsgi"])
def test_an_idle_thread_runs_the_signal_while_another_serves(ruwsgi, tmp_path, kind):
    """In a worker with 2 threads, one busy with a request, a signal for the worker is
    handled by the idle thread at once, not after the request, whichever thread is busy
    (uWSGI, the reference, is run as well). Requests are repeated (at most 4) until each
    core has been the busy one; a server that always gives a lone request to the same core
    is checked with that core busy (before, a busy core 0 held every handler back)."""
    out = tmp_path / "out"
    out.mkdir()
    args = ["--master", "--processes", "1", "--threads", "2", "--http-socket", "127.0.0.1:0",
            "--wsgi-file", APP]
    env = dict(os.environ, SIG_OUT=str(out), SIG_PROFILE="targets")
    if kind == "ruwsgi":
        srv = ruwsgi(*args, env=env)
    else:
        srv = start_uwsgi(args, tmp_path / "uwsgi", env=env)
        ruwsgi.servers.append(srv)
    busy_cores = set()
    for attempt in range(4):
        t, box = wait_in_background(srv, "/slow?s=1.5")
        marker = out / "slow-1"
        core = int(wait_until(lambda: marker.exists() and marker.read_text(), 10,
                              what="a thread in /slow"))
        t0 = time.time()
        assert get(srv, "/raise?n=10") == "None"
        try:
            ran = wait_runs(out, "any", attempt + 1, timeout=1.0)
            delay = ran[-1]["t"] - t0
        except AssertionError:
            delay = None
        res = finish(t, box)
        assert res["core"] == core
        assert delay is not None and delay < 1.0, \
            "the signal waited for the request on core %d (attempt %d)" % (core, attempt)
        wait_until(lambda: not marker.exists(), 5, what="the slow request's end")
        busy_cores.add(core)
        if busy_cores == {0, 1}:
            break
    assert busy_cores, "no request was ever busy"
