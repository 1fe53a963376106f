"""The spooler end to end: the uwsgi module's spooler API, uwsgidecorators, remote enqueue
(modifier1 17), and durability. Every task writes a marker line per completion (and one per
start) in its own file, so the tests count completions per task instead of sampling:
after SIGKILLed spoolers, a SIGKILLed master, reloads under a stream of spool() calls and a
directory full of garbage, every task spool() accepted has completed, and none twice unless
its spooler died while running it."""
import json
import os
import random
import re
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from helpers import APPS, http_request, wait_until

APP = APPS / "spoolapp.py"
DECO = APPS / "spooldeco.py"


def start(ruwsgi, tmp_path, *extra, app=APP, spool="spool", out="out", name=None, site=False):
    spool_dir = tmp_path / spool
    out_dir = tmp_path / out
    out_dir.mkdir(exist_ok=True)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--spooler", spool_dir,
                 *extra, env={"SPOOL_OUT": str(out_dir)}, name=name, site=site)
    return srv, spool_dir, out_dir


def get(srv, path, timeout=10):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body


def lines(out, name):
    p = out / name
    return p.read_text().splitlines() if p.exists() else []


def wait_done(out, names, timeout=20.0):
    """Bounded wait until every task in `names` has at least one completion."""
    names = list(names)
    wait_until(lambda: all(lines(out, n) for n in names), timeout,
               what="completion of %d tasks (missing: %r)" % (
                   len(names), [n for n in names if not lines(out, n)][:10]))


def spooler_pids(srv):
    """The spoolers' pids once every spooler has published its own (they are forked after
    the workers, so right after readiness a slot may still read 0)."""
    return wait_until(lambda: (lambda p: p if 0 not in p else None)(
        json.loads(get(srv, "/pids"))), 10, what="spooler pids")


def task_files(spool_dir):
    return sorted(p.name for p in spool_dir.rglob("uwsgi_spoolfile_on_*") if p.is_file())


def test_api_types_errors_and_task_dict(ruwsgi, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-processes", "2",
                                "--spooler-chdir", cwd)
    spooler_pids(srv)
    assert get(srv, "/api") == b"ok"
    path = get(srv, "/spool?n=t1&body=the%20body").decode()
    assert path.startswith(str(spool_dir.resolve()) + "/uwsgi_spoolfile_on_")
    wait_done(out, ["t1", "bytes-like"])
    info = json.loads(lines(out, "t1")[0])
    assert info["spooler"] is True and info["worker_id"] == 0
    assert info["lock_error"] == "The spooler cannot lock/unlock resources"
    assert info["cwd"] == str(cwd.resolve())
    assert info["dir"] == str(spool_dir.resolve())
    assert info["name"] == path
    assert info["body"] == "the body"
    # bytes keys for the spool vars, str keys for the two the spooler adds
    assert info["keys"] == sorted(["b'n'", "'spooler_task_name'", "'body'"])
    pids = json.loads(get(srv, "/pids"))
    assert len(pids) == 2 and info["pid"] in pids
    srv.wait_log(r"\[spooler \S+ pid: \d+\] done with task uwsgi_spoolfile_on_\S+ after \d+ seconds")
    wait_until(lambda: not task_files(spool_dir), 10, what="task files removed")
    assert srv.stop(signal.SIGTERM) == 0


def test_decorators_unmodified(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-frequency", "1", app=DECO,
                                site=True)
    assert get(srv, "/go") == b"ok"
    wait_done(out, ["plain", "pickled", "raw"])
    plain = json.loads(lines(out, "plain")[0])
    assert ["name", "x"] in plain and ["value", "y"] in plain and ["ud_spool_func", "plain"] in plain
    assert lines(out, "pickled") == [repr((1, (2, 3), {"k": b"\x00\xff"}, {"extra": [4.5]}))]
    assert ["r", "1"] in json.loads(lines(out, "raw")[0])
    # @spoolforever returns SPOOL_RETRY: it comes back every spooler-frequency
    wait_until(lambda: len(lines(out, "forever")) >= 2, 10, what="spoolforever runs again")
    assert len(task_files(spool_dir)) == 1
    assert len(lines(out, "plain")) == 1 and len(lines(out, "raw")) == 1
    srv.stop(signal.SIGTERM)


def test_raise_is_logged_and_retry_waits_for_the_frequency(ruwsgi, tmp_path):
    # set_spooler_frequency overrides the option in every spooler (30 would time out below)
    # two spoolers: the second must not run a kept task before the period ends either
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-frequency", "30",
                                "--spooler-processes", "2")
    assert get(srv, "/frequency?s=2") == b"True"
    t0 = time.time()
    raising = get(srv, "/spool?n=r1&mode=raise-once").decode()
    get(srv, "/spool?n=rt1&mode=retry-once")
    get(srv, "/spool?n=at1&at=%f" % (time.time() + 1.5))
    srv.wait_log(r"RuntimeError: task r1 fails once")
    srv.wait_log(r"task %s raised an exception" % raising)
    wait_done(out, ["r1", "rt1", "at1"], timeout=15)
    for n in ("r1", "rt1"):
        starts = [float(l.split()[0]) for l in lines(out, n + ".start")]
        assert len(starts) == 2 and len(lines(out, n)) == 1, n
        # the second run comes after one spooler-frequency, not before
        assert 1.9 <= starts[1] - starts[0] < 6, (n, starts)
    at_start = float(lines(out, "at1.start")[0].split()[0])
    assert at_start >= t0 + 1.4
    srv.stop(signal.SIGTERM)


def test_ordered_priorities_max_tasks_and_ignore(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-ordered", "--spooler-max-tasks", "3",
                                "--spooler-quiet")
    pid0 = spooler_pids(srv)[0]
    get(srv, "/spool?n=p1&priority=5")
    get(srv, "/many?start=0&count=7")
    get(srv, "/spool?n=ig&mode=ignore")
    wait_done(out, ["p1"] + [str(i) for i in range(7)])
    assert (spool_dir / "5").is_dir()
    srv.wait_log(r"maximum number of tasks reached \(3\): recycling")
    srv.wait_log(r"spooler 1 \(pid: %d\) recycled" % pid0)
    srv.wait_log(r"Respawned ruwsgi spooler 1")
    assert "done with task" not in srv.log_text()
    # SPOOL_IGNORE keeps the file
    wait_until(lambda: lines(out, "ig.start"), 10, what="ignored task started")
    assert len(task_files(spool_dir)) == 1 and not lines(out, "ig")
    srv.stop(signal.SIGTERM)
    # without spooler-ordered a priority task is never scanned
    srv2, _, out2 = start(ruwsgi, tmp_path, spool="spool2", out="out2", name="unordered")
    get(srv2, "/spool?n=p2&priority=1")
    get(srv2, "/spool?n=after")
    wait_done(out2, ["after"])
    assert not lines(out2, "p2") and len(task_files(tmp_path / "spool2")) == 1
    srv2.stop(signal.SIGTERM)


def test_several_spooler_directories(ruwsgi, tmp_path):
    # two `spooler` directories: one spooler each, in option order; `spooler` picks one
    other = tmp_path / "spool-b"
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler", other)
    pids = spooler_pids(srv)
    assert len(pids) == 2
    first = get(srv, "/spool?n=in-a").decode()
    second = get(srv, "/spool?n=in-b&spooler=%s" % other).decode()
    assert first.startswith(str(spool_dir.resolve()) + "/uwsgi_spoolfile_on_")
    assert second.startswith(str(other.resolve()) + "/uwsgi_spoolfile_on_")
    wait_done(out, ["in-a", "in-b"])
    a, b = (json.loads(lines(out, n)[0]) for n in ("in-a", "in-b"))
    assert (a["dir"], a["pid"]) == (str(spool_dir.resolve()), pids[0])
    assert (b["dir"], b["pid"]) == (str(other.resolve()), pids[1])
    wait_until(lambda: not task_files(spool_dir) and not task_files(other), 10,
               what="task files removed")
    srv.stop(signal.SIGTERM)


def test_ordered_scan_runs_priorities_first_in_version_order(ruwsgi, tmp_path):
    # tasks on disk before the start, so the first scan sees them all: numeric priority
    # directories first, lowest number first, then the directory itself, each in version
    # order (a plain string sort would put "10" before "2" and "_10" before "_9")
    spool_dir = tmp_path / "spool"
    for sub, name, n in [("", "x_10", "o-10"), ("10", "x_1", "o-p10"), ("", "x_9", "o-9"),
                         ("2", "x_1", "o-p2"), ("2", "x_0", "o-p2-first"),
                         ("notnum", "x_1", "o-notnum")]:
        d = spool_dir / sub
        d.mkdir(parents=True, exist_ok=True)
        (d / ("uwsgi_spoolfile_on_" + name)).write_bytes(spool_packet([(b"n", n.encode())]))
    srv, _, out = start(ruwsgi, tmp_path, "--spooler-ordered")
    order = ["o-p2-first", "o-p2", "o-p10", "o-9", "o-10"]
    wait_done(out, order)
    starts = [float(lines(out, n + ".start")[0].split()[0]) for n in order]
    assert starts == sorted(starts), list(zip(order, starts))
    # a sub-directory whose name is not a number is no priority: never scanned
    assert not lines(out, "o-notnum.start")
    assert task_files(spool_dir) == ["uwsgi_spoolfile_on_x_1"]
    srv.stop(signal.SIGTERM)


def spool_packet(pairs):
    body = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                    for k, v in pairs)
    return struct.pack("<BHB", 17, len(body), 0) + body


def remote(addr, pkt):
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(pkt)
        data = b""
        while len(data) < 4:
            got = s.recv(4 - len(data))
            if not got:
                break
            data += got
        return data


def test_remote_enqueue(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--socket", "127.0.0.1:0",
                                "--spooler-accept-remote")
    addr = (srv.uwsgi.host, srv.uwsgi.port)
    assert remote(addr, spool_packet([(b"n", b"remote1"), (b"mode", b"ok")])) == b"\xff\x00\x00\x01"
    wait_done(out, ["remote1"])
    # a bad vars block is refused with status 0 and writes nothing
    bad = struct.pack("<BHB", 17, 3, 0) + b"\x00\x00\x01"
    assert remote(addr, bad) == b"\xff\x00\x00\x00"
    srv.wait_log(r"remote spool request from 127\.0\.0\.1:\d+ refused")
    srv.stop(signal.SIGTERM)
    # an instance without a spooler answers 0
    plain = ruwsgi("--socket", "127.0.0.1:0", "--wsgi-file", APPS / "validated.py",
                   "--spooler-accept-remote", name="nospool")
    assert remote((plain.uwsgi.host, plain.uwsgi.port), spool_packet([(b"n", b"x")])) == \
        b"\xff\x00\x00\x00"
    # without spooler-accept-remote (the default) the packet is refused and closed
    off, _, off_out = start(ruwsgi, tmp_path, "--socket", "127.0.0.1:0", spool="offspool",
                            out="off_out", name="off")
    assert remote((off.uwsgi.host, off.uwsgi.port), spool_packet([(b"n", b"x")])) == b""
    off.wait_log(r"unavailable modifier requested: 17")
    assert not list((tmp_path / "offspool").iterdir())


def test_sigkill_spooler_mid_task(ruwsgi, tmp_path):
    # also the write path with spooler-fsync
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-fsync=1")
    get(srv, "/spool?n=long&mode=sleep&sleep=1.5")
    get(srv, "/many?start=0&count=20")
    wait_until(lambda: lines(out, "long.start"), 10, what="long task started")
    victim = int(lines(out, "long.start")[0].split()[1])
    os.kill(victim, signal.SIGKILL)
    srv.wait_log(r"DAMN ! spooler 1 \(pid: %d\) died, killed by signal 9" % victim)
    wait_done(out, ["long"] + [str(i) for i in range(20)], timeout=20)
    # the killed run left no completion; the task ran again, to completion, once
    assert len(lines(out, "long.start")) == 2 and len(lines(out, "long")) == 1
    for i in range(20):
        assert len(lines(out, str(i))) == 1, i
    wait_until(lambda: not task_files(spool_dir), 10, what="task files removed")
    srv.stop(signal.SIGTERM)


def test_sigkill_master_then_restart(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path)
    n = 40
    get(srv, "/many?start=0&count=%d&mode=sleep&sleep=0.05" % n)
    wait_until(lambda: sum(1 for i in range(n) if lines(out, str(i))) >= 5, 10,
               what="some tasks done")
    srv.children()
    os.kill(srv.pid, signal.SIGKILL)
    srv.wait_exit()
    srv.assert_no_orphans(timeout=5)
    done_before = {i for i in range(n) if lines(out, str(i))}
    assert len(done_before) < n, "every task finished before the kill: nothing was tested"
    srv2, _, _ = start(ruwsgi, tmp_path, name="restarted")
    wait_done(out, [str(i) for i in range(n)], timeout=20)
    twice = [i for i in range(n) if len(lines(out, str(i))) > 1]
    # at most the task the one spooler was running at the kill, and only if it had written
    # its marker before the kill; it ran twice because its spooler died while running it
    assert len(twice) <= 1, twice
    for i in twice:
        assert len(lines(out, "%d.start" % i)) == 2 and i in done_before
    wait_until(lambda: not task_files(spool_dir), 10, what="task files removed")
    srv2.stop(signal.SIGTERM)


def test_reload_under_a_stream_of_spool_calls(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--processes", "2")
    accepted = []
    failures = []
    stop = threading.Event()

    def stream():
        i = 0
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline and i < 2000:
            try:
                r = http_request(srv.http.target, "GET",
                                 "/spool?n=s%d&mode=sleep&sleep=0.01" % i, timeout=10)
                if r.status == 200:
                    accepted.append("s%d" % i)
                else:
                    failures.append((i, r.status))
            except OSError as e:
                failures.append((i, repr(e)))
            i += 1
            # paced: the 2,000-call cap must outlast both reloads on a fast machine
            time.sleep(0.01)

    pids = [spooler_pids(srv)]
    t = threading.Thread(target=stream)
    t.start()
    try:
        for _ in range(2):
            wait_until(lambda: len(accepted) >= 40, 10, what="spool calls accepted")
            mark = srv.log_len()
            base = len(accepted)
            srv.signal(signal.SIGHUP)
            srv.wait_log(r"reload done, generation \d+ ready", timeout=20, start=mark)
            wait_until(lambda: len(accepted) >= base + 40, 10, what="spool calls after reload")
            pids.append(wait_until(
                lambda: (lambda p: p if 0 not in p and p != pids[-1] else None)(
                    json.loads(get(srv, "/pids"))), 10, what="a new spooler"))
    finally:
        stop.set()
        t.join(timeout=40)
    assert not t.is_alive()
    # each reload replaced the spooler (it finished its task first)
    assert len(pids) == 3, pids
    wait_done(out, accepted, timeout=30)
    twice = [n for n in accepted if len(lines(out, n)) != 1]
    assert twice == [], twice
    assert failures == [], failures[:5]
    wait_until(lambda: not task_files(spool_dir), 10, what="task files removed")
    srv.stop(signal.SIGTERM)


def test_garbage_and_half_written_files_never_run(ruwsgi, tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    valid = spool_packet([(b"n", b"g-valid")])
    (spool_dir / "uwsgi_spoolfile_on_garbage").write_bytes(b"\x00\xffnot a spool file" * 10)
    (spool_dir / "uwsgi_spoolfile_on_empty").write_bytes(b"")
    (spool_dir / "uwsgi_spoolfile_on_truncated").write_bytes(
        spool_packet([(b"n", b"g-truncated")])[:-3])
    (spool_dir / "uwsgi_spoolfile_on_wrongmod").write_bytes(
        b"\x00" + spool_packet([(b"n", b"g-wrongmod")])[1:])
    # an interrupted atomic write (temporary name) and files not named like tasks
    (spool_dir / ".spooling_uwsgi_spoolfile_on_tmp").write_bytes(spool_packet([(b"n", b"g-tmp")]))
    (spool_dir / "notatask").write_bytes(spool_packet([(b"n", b"g-other")]))
    (spool_dir / "uwsgi_spoolfile_on_dir").mkdir()
    (spool_dir / "uwsgi_spoolfile_on_valid").write_bytes(valid)
    # a task being written without spooler-fsync is 0200 until complete
    writing = spool_dir / "uwsgi_spoolfile_on_writing"
    writing.write_bytes(spool_packet([(b"n", b"g-writing")]))
    writing.chmod(0o200)
    # a writer killed after every byte: each prefix of a task, as a file named like a task
    half = spool_packet([(b"n", b"g-half"), (b"mode", b"ok")])
    for cut in range(len(half)):
        (spool_dir / ("uwsgi_spoolfile_on_half%03d" % cut)).write_bytes(half[:cut])
    # the same without spooler-fsync, a task with a body (whose prefixes may parse): 0200
    with_body = spool_packet([(b"n", b"g-body")]) + b"the body"
    writing_names = ["uwsgi_spoolfile_on_writing"]
    for cut in range(len(with_body) + 1):
        w = spool_dir / ("uwsgi_spoolfile_on_w%03d" % cut)
        w.write_bytes(with_body[:cut])
        w.chmod(0o200)
        writing_names.append(w.name)
    # random bytes (never modifier1 17)
    rng = random.Random(17)
    for i in range(200):
        first = rng.choice([b for b in range(256) if b != 17])
        (spool_dir / ("uwsgi_spoolfile_on_rand%03d" % i)).write_bytes(
            bytes([first]) + rng.randbytes(rng.randrange(0, 300)))
    rejected = (["uwsgi_spoolfile_on_" + b for b in ("garbage", "empty", "truncated", "wrongmod")]
                + ["uwsgi_spoolfile_on_half%03d" % c for c in range(len(half))]
                + ["uwsgi_spoolfile_on_rand%03d" % i for i in range(200)])
    srv, _, _ = start(ruwsgi, tmp_path)
    get(srv, "/many?start=0&count=10")
    wait_done(out, ["g-valid"] + [str(i) for i in range(10)])

    def set_aside():
        return sorted(p.name[len("broken."):] for p in spool_dir.glob("broken.*"))

    # every one of them, counted: renamed broken.<name> and logged
    wait_until(lambda: set_aside() == sorted(rejected), 20,
               what="%d files set aside (have %d)" % (len(rejected), len(set_aside())))
    log = srv.log_text()
    for name in rejected:
        assert re.search(r"%s rejected \(not a spool file: " % name, log), name
    for n in ("g-truncated", "g-wrongmod", "g-tmp", "g-other", "g-writing", "g-half", "g-body"):
        assert not lines(out, n) and not lines(out, n + ".start"), n
    assert (spool_dir / ".spooling_uwsgi_spoolfile_on_tmp").exists()
    assert task_files(spool_dir) == sorted(writing_names)
    srv.stop(signal.SIGTERM)


def test_bad_spooler_options_stop_the_start(ruwsgi, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--spooler",
                 blocker / "sub", ready=False, env={"SPOOL_OUT": str(tmp_path)}, name="baddir")
    assert srv.wait_exit() == 1
    assert "spooler" in srv.log_text() and str(blocker / "sub") in srv.log_text()
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--spooler", tmp_path,
                 "--spooler-processes", "0", ready=False, name="badprocs")
    assert srv.wait_exit() == 1
    assert "spooler-processes" in srv.log_text()


def test_lazy_apps_need_spooler_import(ruwsgi, tmp_path):
    # lazy-apps: the master imports nothing, so the spooler has no uwsgi.spooler of its own
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--lazy-apps", "--spooler-frequency", "1")
    get(srv, "/spool?n=lazy1")
    srv.wait_log(r"unable to find the spooler function, have you loaded it into the spooler "
                 r"process \?")
    assert not lines(out, "lazy1") and len(task_files(spool_dir)) == 1
    srv.stop(signal.SIGTERM)
    # spooler-import (uWSGI's spooler-python-import alias) loads it in the spoolers only
    srv, _, _ = start(ruwsgi, tmp_path, "--lazy-apps", "--spooler-python-import", APP,
                      name="imported")
    wait_done(out, ["lazy1"])
    assert json.loads(lines(out, "lazy1")[0])["spooler"] is True
    get(srv, "/spool?n=lazy2")
    wait_done(out, ["lazy2"])
    srv.stop(signal.SIGTERM)


def test_spooler_import_runs_in_spoolers_only(ruwsgi, tmp_path):
    # `spooler-import MODULE` (a module name on the path): imported once in each spooler,
    # after fork, and never in the master or a worker
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "spool_only.py").write_text(
        "import os, uwsgi\n"
        "with open(os.path.join(os.environ['SPOOL_OUT'], 'imported'), 'a') as f:\n"
        "    f.write('%d %r\\n' % (os.getpid(), uwsgi.i_am_the_spooler()))\n")
    srv, _, out = start(ruwsgi, tmp_path, "--processes", "2", "--spooler-processes", "2",
                        "--pythonpath", mods, "--spooler-import", "spool_only")
    pids = spooler_pids(srv)
    wait_until(lambda: len(lines(out, "imported")) >= 2, 10, what="two imports")
    get(srv, "/spool?n=after-import")
    wait_done(out, ["after-import"])
    imported = [l.split() for l in lines(out, "imported")]
    assert sorted(int(p) for p, _ in imported) == sorted(pids), (imported, pids)
    assert all(flag == "True" for _, flag in imported), imported
    srv.stop(signal.SIGTERM)


def test_spool_files_interoperate_with_real_uwsgi(ruwsgi, tmp_path):
    """Tasks written by uWSGI run in ruwsgi, and the other way round (same format, same
    names, the body and the special keys intact)."""
    from helpers import start_uwsgi
    out = tmp_path / "out"
    out.mkdir()
    env = {"SPOOL_OUT": str(out)}
    from_uwsgi, from_ruwsgi = tmp_path / "from-uwsgi", tmp_path / "from-ruwsgi"
    from_uwsgi.mkdir()
    from_ruwsgi.mkdir()
    u = start_uwsgi(["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", APP,
                     "--spooler-external", from_uwsgi], tmp_path / "uw1", env=env)
    path = get(u, "/spool?n=u1&body=from%20uwsgi").decode()
    assert os.path.basename(path).startswith("uwsgi_spoolfile_on_")
    u.stop(signal.SIGTERM, check_orphans=False)
    assert task_files(from_uwsgi) == [os.path.basename(path)]
    srv, _, _ = start(ruwsgi, tmp_path, "--spooler-external", from_ruwsgi, spool="from-uwsgi")
    wait_done(out, ["u1"])
    assert json.loads(lines(out, "u1")[0])["body"] == "from uwsgi"
    path = get(srv, "/spool?n=r1&body=from%20ruwsgi&spooler=" + str(from_ruwsgi)).decode()
    assert path.startswith(str(from_ruwsgi))
    # spooler-external: no local process serves it. The one spooler (of the local
    # directory) runs a task spooled after r1 and r1 is still on disk, not run
    assert len(spooler_pids(srv)) == 1
    get(srv, "/spool?n=local-after")
    wait_done(out, ["local-after"])
    assert not lines(out, "r1.start") and task_files(from_ruwsgi) == [os.path.basename(path)]
    srv.stop(signal.SIGTERM)
    u = start_uwsgi(["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", APP,
                     "--spooler", from_ruwsgi], tmp_path / "uw2", env=env)
    wait_done(out, ["r1"])
    info = json.loads(lines(out, "r1")[0])
    assert info["body"] == "from ruwsgi" and info["spooler"] is True
    # uWSGI 2.0 passes the bare file name (it runs tasks from inside the directory);
    # ruwsgi passes the full path, as the reference says
    assert os.path.basename(info["name"]) == os.path.basename(path)
    wait_until(lambda: not task_files(from_ruwsgi), 10, what="uWSGI removed the task")
    u.stop(signal.SIGTERM, check_orphans=False)


def cpu_seconds(pid):
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_spoolers_one_task_no_spinning(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-processes", "2")
    pids = spooler_pids(srv)
    slow = get(srv, "/spool?n=slow&mode=sleep&sleep=1.5").decode()
    wait_until(lambda: lines(out, "slow.start"), 10, what="slow task started")
    # spooler_get_task() of a task a spooler holds (runs) is None
    assert get(srv, "/task?path=" + slow) == b"None"
    assert not lines(out, "slow"), "the task ended before the check: nothing was tested"
    runner = int(lines(out, "slow.start")[0].split()[1])
    other = [p for p in pids if p != runner][0]
    before = cpu_seconds(other)
    wait_done(out, ["slow"])
    # the other spooler saw the locked task and left it alone, without a busy loop
    assert cpu_seconds(other) - before < 0.3
    assert len(lines(out, "slow.start")) == 1 and len(lines(out, "slow")) == 1
    srv.stop(signal.SIGTERM)


def test_graceful_stop_lets_the_running_task_finish(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path)
    get(srv, "/spool?n=finishing&mode=sleep&sleep=1")
    wait_until(lambda: lines(out, "finishing.start"), 10, what="task started")
    assert not lines(out, "finishing")
    # SIGTERM: graceful stop; the spooler gets SIGHUP and ends its task first
    assert srv.stop(signal.SIGTERM) == 0
    assert len(lines(out, "finishing")) == 1
    assert task_files(spool_dir) == []


def test_spooler_harakiri_and_user_harakiri(ruwsgi, tmp_path):
    srv, spool_dir, out = start(ruwsgi, tmp_path, "--spooler-harakiri", "1")
    get(srv, "/spool?n=hang&mode=hang-once")
    srv.wait_log(r"\*\*\* HARAKIRI ON SPOOLER 1 \(pid: \d+", timeout=10)
    srv.wait_log(r"spooler task uwsgi_spoolfile_on_", timeout=5)
    # the killed task stays on disk and runs again in the respawned spooler
    wait_done(out, ["hang"], timeout=15)
    assert len(lines(out, "hang.start")) == 2 and len(lines(out, "hang")) == 1
    srv.stop(signal.SIGTERM)
    srv, _, _ = start(ruwsgi, tmp_path, name="user")
    get(srv, "/spool?n=uh&mode=user-harakiri-once")
    srv.wait_log(r"HARAKIRI \(user\) triggered by spooler 1", timeout=10)
    wait_done(out, ["uh"], timeout=15)
    assert len(lines(out, "uh.start")) == 2 and len(lines(out, "uh")) == 1
    srv.stop(signal.SIGTERM)
