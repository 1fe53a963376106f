"""The alarm subsystem: `alarm NAME PLUGIN:ARGS` (cmd, signal, mule, log), its triggers
(`alarm-log`/`not-alarm-log` through the log master, `alarm-backlog`, `alarm-segfault`,
`uwsgi.alarm`) and `alarm-freq`.

Each test starts a real server on 127.0.0.1:0 and waits for every effect with a bounded
poll (wait_until / wait_log), never a bare sleep.
"""
import os
import re
import signal
import socket

import requests

from helpers import APPS, wait_until

APP = str(APPS / "alarmapp.py")
MULE = str(APPS / "alarmmule.py")


def start(ruwsgi, tmp_path, *extra, processes=2, logto=None):
    """Start the alarm app (without request logging: request lines carry the query string,
    which would match the rules too); with `logto` the server logs there (and so the
    helpers read the log there)."""
    args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
            "--processes", str(processes), "--disable-logging", *extra]
    if logto is None:
        return ruwsgi(*args, env={"ALARM_DIR": str(tmp_path)})
    srv = ruwsgi(*args, "--logto", str(logto), env={"ALARM_DIR": str(tmp_path)}, ready=False)
    srv.log_path = logto
    return srv.wait_ready()


def cmd_alarm(name, path):
    """An alarm appending its message to `path`."""
    return ["--alarm", "%s cmd:cat >> %s" % (name, path)]


def read(path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def wait_text(path, needle, timeout=10.0, count=1):
    """Wait until `needle` occurs `count` times in the file; returns its text."""
    return wait_until(lambda: (lambda t: t if t.count(needle) >= count else None)(read(path)),
                      timeout, what="%d x %r in %s (has %r)" % (count, needle, path,
                                                                read(path)[-500:]))


def get(srv, path, **params):
    r = requests.get(srv.url + path, params=params, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.text


def test_alarm_log_runs_a_command_with_the_line(ruwsgi, tmp_path):
    """A line an app writes to stderr, stdout or through uwsgi.log that matches an
    alarm-log rule runs the cmd alarm with the line on its stdin; other lines do not."""
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), "--alarm-log", "file DISK (FULL|GONE)")
    srv.wait_log(r"ruwsgi: log master started \(alarm-log\): every process logs through it "
                 r"\(stderr, stdout\)")
    get(srv, "/err", m="nothing to see")
    get(srv, "/err", m="DISK FULL on /var")
    wait_text(out, "DISK FULL on /var\n")
    get(srv, "/out", m="stdout says DISK GONE")
    wait_text(out, "stdout says DISK GONE\n")
    get(srv, "/log", m="uwsgi.log says DISK FULL too")
    text = wait_text(out, "uwsgi.log says DISK FULL too\n")
    assert "nothing to see" not in text
    # The lines still reach the log, once each.
    log = srv.log_text()
    for line in ("nothing to see", "DISK FULL on /var", "stdout says DISK GONE",
                 "uwsgi.log says DISK FULL too"):
        assert len(re.findall("^%s$" % re.escape(line), log, re.M)) == 1, (line, log[-2000:])
    assert srv.stop() == 0


def test_not_alarm_log_stops_the_rules(ruwsgi, tmp_path):
    """A line matching a not-alarm-log rule raises nothing from the rules after it; a rule
    before it still raises."""
    out = tmp_path / "alarm.txt"
    early = tmp_path / "early.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), *cmd_alarm("early", early),
                "--alarm-log", "early EARLY", "--not-alarm-log", "file IGNORE",
                "--alarm-log", "file ERROR")
    get(srv, "/err", m="ERROR but IGNORE me EARLY")
    get(srv, "/err", m="ERROR for real")
    wait_text(out, "ERROR for real\n")
    wait_text(early, "ERROR but IGNORE me EARLY\n")
    assert "IGNORE" not in read(out)
    assert srv.stop() == 0


def test_alarm_freq_skips_identical_messages(ruwsgi, tmp_path):
    """Within alarm-freq an alarm skips a message identical to its last one; a different
    message goes through, and so does the first one again after it."""
    srv = start(ruwsgi, tmp_path, "--alarm", "lg log:SEEN", "--alarm-log", "lg ERROR",
                "--alarm-freq", "60", processes=1)
    get(srv, "/err", m="ERROR same")
    get(srv, "/err", m="ERROR same")
    get(srv, "/err", m="ERROR other")
    srv.wait_log(r"^\[ruwsgi-alarm lg\] ALARM: SEEN ERROR other$")
    get(srv, "/err", m="ERROR same")
    srv.wait_log(r"^\[ruwsgi-alarm lg\] ALARM: SEEN ERROR same$", count=2)
    get(srv, "/err", m="ERROR same")
    get(srv, "/err", m="ERROR last")
    srv.wait_log(r"^\[ruwsgi-alarm lg\] ALARM: SEEN ERROR last$")
    log = srv.log_text()
    assert len(re.findall(r"^\[ruwsgi-alarm lg\] ALARM: SEEN ERROR same$", log, re.M)) == 2, log
    # The alarm's own lines contain ERROR but never raise it again.
    assert len(re.findall(r"ALARM: SEEN", log)) == 4, log
    assert srv.stop() == 0


def test_uwsgi_alarm_from_a_worker(ruwsgi, tmp_path):
    """uwsgi.alarm(name, msg) with str or bytes runs the alarm and returns None; an
    unknown alarm and a message longer than alarm-msg-size do nothing (and return None)."""
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), "--alarm-msg-size", "32")
    assert get(srv, "/alarm", name="file", m="hello from a worker") == "None"
    wait_text(out, "hello from a worker\n")
    assert get(srv, "/alarm", name="nosuch", m="lost") == "None"
    assert get(srv, "/alarm", name="file", m="x" * 33) == "None"
    assert get(srv, "/alarm", name="file", m="as bytes", bytes="1") == "None"
    text = wait_text(out, "as bytes\n")
    assert "lost" not in text and "x" * 33 not in text
    # No log master without alarm-log rules.
    assert "log master started" not in srv.log_text()
    assert srv.stop() == 0


def test_uwsgi_alarm_from_a_mule(ruwsgi, tmp_path):
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), "--mule", MULE)
    wait_text(out, "from mule 1\n", timeout=15)
    assert srv.stop() == 0


def test_signal_alarm_runs_the_registered_handler(ruwsgi, tmp_path):
    """`signal:17`: the alarm routes signal 17, whose handler (registered by the app for
    any worker) runs."""
    srv = start(ruwsgi, tmp_path, "--alarm", "sig signal:17", "--alarm-log", "sig PANIC")
    get(srv, "/err", m="PANIC now")
    wait_text(tmp_path / "signal.txt", "signal 17\n")
    assert get(srv, "/alarm", name="sig", m="direct") == "None"
    wait_text(tmp_path / "signal.txt", "signal 17\n", count=2)
    assert srv.stop() == 0


def test_mule_alarm_reaches_the_mule_hook(ruwsgi, tmp_path):
    """`mule:1`: the message goes to mule 1's queue, where the plain mule hands it to
    uwsgi.mule_msg_hook; `mule:0` to the shared queue."""
    srv = start(ruwsgi, tmp_path, "--mules", "1", "--alarm", "m1 mule:1",
                "--alarm", "any mule:0", "--alarm-log", "m1 TO MULE ONE",
                "--alarm-log", "any TO ANY MULE")
    srv.wait_log(r"spawned ruwsgi mule 1 \(pid: \d+\)")
    get(srv, "/err", m="message TO MULE ONE")
    wait_text(tmp_path / "mule.txt", "message TO MULE ONE\n")
    get(srv, "/err", m="message TO ANY MULE")
    wait_text(tmp_path / "mule.txt", "message TO ANY MULE\n")
    assert srv.stop() == 0


def test_alarm_segfault(ruwsgi, tmp_path):
    """A worker killed by SIGSEGV raises the alarm-segfault alarm and is respawned."""
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("crash", out), "--alarm-segfault", "crash",
                processes=1)
    first = srv.wait_log(r"spawned ruwsgi worker 1 \(pid: (\d+)")[0].group(1)
    try:
        requests.get(srv.url + "/segv", timeout=10)
    except requests.RequestException:
        pass
    text = wait_text(out, "died of a segmentation fault (SIGSEGV)")
    assert "worker 1 (pid: %s) died of a segmentation fault (SIGSEGV)\n" % first in text
    srv.wait_log(r"Respawned ruwsgi worker 1 \(new pid: \d+\)")
    wait_until(lambda: get(srv, "/") == "ok", 10, what="the respawned worker")
    assert srv.stop() == 0


def test_alarm_backlog(ruwsgi, tmp_path):
    """With the only worker busy and `listen 2`, idle connections fill the listen queue:
    the master logs it and raises the alarm-backlog alarm with that line."""
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("lq", out), "--alarm-backlog", "lq",
                "--listen", "2", processes=1)
    busy = socket.create_connection(srv.addr, timeout=5)
    busy.sendall(b"GET /sleep?s=5&mark=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    waiting = []
    try:
        wait_text(tmp_path / "sleeping.txt", "sleeping")
        for _ in range(6):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(srv.addr)
            except BlockingIOError:
                pass
            waiting.append(s)
        text = wait_text(out, "full !!!", timeout=10)
        assert re.search(r'\*\*\* listen queue of socket "127\.0\.0\.1:\d+" \(fd: \d+\) full !!! '
                         r'\(\d+/2\) \*\*\*\n', text), text
    finally:
        for s in waiting:
            s.close()
        busy.close()
    assert srv.stop() == 0


def test_alarm_log_keeps_log_lines_whole_in_logto(ruwsgi, tmp_path):
    """With the log master on and logto, concurrent bursts from several workers reach the
    log file as whole lines, none lost, none doubled."""
    logfile = tmp_path / "server.log"
    out = tmp_path / "alarm.txt"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), "--alarm-log", "file NEVERMATCHES",
                processes=4, logto=logfile)
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: get(srv, "/burst", n="200", w=str(300 + i * 100)), range(8)))
    rx = re.compile(r"^burst (\d+) (\d+) (\d+) x+ end$")
    want = 8 * 200

    def whole():
        lines = [l for l in read(logfile).splitlines() if "burst " in l and "GET /burst" not in l]
        return lines if len(lines) >= want else None
    lines = wait_until(whole, 15, what="%d burst lines in %s" % (want, logfile))
    bad = [l for l in lines if not rx.match(l)]
    assert not bad, bad[:5]
    seen = [rx.match(l).groups() for l in lines]
    assert len(set(seen)) == want == len(seen)
    assert not out.exists()
    assert srv.stop() == 0
    assert "goodbye to ruwsgi." in read(logfile)


def test_reexec_reload_keeps_logging_and_alarms(ruwsgi, tmp_path):
    """A graceful reload with preloaded apps re-executes the master: the new image makes its
    own log pipe, log lines keep reaching the log and alarm-log rules keep working."""
    out = tmp_path / "alarm.txt"
    logfile = tmp_path / "server.log"
    srv = start(ruwsgi, tmp_path, *cmd_alarm("file", out), "--alarm-log", "file ERROR",
                logto=logfile)
    get(srv, "/err", m="ERROR before the reload")
    wait_text(out, "ERROR before the reload\n")
    srv.signal(signal.SIGHUP)
    wait_text(logfile, "ruwsgi: all workers gone, re-executing the master (reload 1)")
    wait_text(logfile, "ruwsgi: reload done, generation 1 ready", timeout=30)
    wait_text(logfile, "log master started", count=2)

    def serves():
        try:
            return get(srv, "/err", m="ERROR after the reload") == "ok"
        except requests.RequestException:
            return False
    wait_until(serves, 20, what="service after the re-exec")
    wait_text(out, "ERROR after the reload\n")
    assert re.search(r"^ERROR after the reload$", read(logfile), re.M)
    assert srv.stop() == 0
    assert "goodbye to ruwsgi." in read(logfile)
