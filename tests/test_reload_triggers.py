"""Reload triggers besides signals: touched files, the master FIFO and its one-byte
commands, chain reloads (one worker at a time, no failed request), `--reload PIDFILE` and
`--stop PIDFILE`."""
import os
import re
import subprocess
import threading
import time

from helpers import APPS, http_request, server_bin, wait_until

APP = APPS / "recycleapp.py"


def start(ruwsgi, *extra, workers=2):
    return ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                  "--processes", str(workers), *extra)


def touch(path):
    t = time.time() + 5           # a different mtime even within one clock tick
    path.touch()
    os.utime(path, (t, t))


def replaced_all(srv, old):
    def check():
        kids = set(srv.children())
        return len(kids) >= len(old) and not (kids & old)
    return check


def fifo_send(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Load:
    """Requests in a loop (bounded in time and count) while something happens."""

    def __init__(self, srv, seconds=20, max_requests=5000):
        self.srv, self.ok, self.failed = srv, 0, []
        self.stop_at = time.monotonic() + seconds
        self.max = max_requests
        self.done = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.done.is_set() and time.monotonic() < self.stop_at \
                and self.ok + len(self.failed) < self.max:
            r = http_request(self.srv.http.target, "GET", "/pid", timeout=10)
            if r.status == 200:
                self.ok += 1
            else:
                self.failed.append(r)

    def finish(self):
        self.done.set()
        self.t.join(30)
        return self.ok, self.failed


def test_touch_reload_and_touch_workers_reload(ruwsgi, tmp_path):
    full, workers = tmp_path / "reload", tmp_path / "workers"
    srv = start(ruwsgi, "--touch-reload", full, "--touch-workers-reload", workers)
    old = set(srv.wait_children(2))
    touch(workers)
    srv.wait_log(r"graceful reload of the workers requested \(touch-workers-reload\)")
    wait_until(replaced_all(srv, old), 20, what="new workers")
    old = set(srv.children())
    touch(full)
    srv.wait_log(r"graceful reload requested \(touch-reload\)")
    wait_until(replaced_all(srv, old), 30, what="new workers after the reload")
    assert http_request(srv.http.target, "GET", "/pid", timeout=10).status == 200


def test_chain_reload_replaces_one_worker_at_a_time_without_failures(ruwsgi, tmp_path):
    chain = tmp_path / "chain"
    srv = start(ruwsgi, "--touch-chain-reload", chain, workers=3)
    old = set(srv.wait_children(3))
    load = Load(srv)
    wait_until(lambda: load.ok > 20, 10, what="load")
    touch(chain)
    srv.wait_log(r"chain reload done", timeout=60)
    ok, failed = load.finish()
    assert not failed, failed[:3]
    assert ok > 20
    assert not (set(srv.children()) & old)
    # one at a time: each replacement is spawned before the next worker is stopped
    log = srv.log_text()
    events = re.findall(r"(worker \d) \(pid: \d+\) chain reload: stopping|"
                        r"Respawned ruwsgi (worker \d)", log)
    order = [("stop", a) if a else ("up", b) for a, b in events]
    assert order == [("stop", "worker 1"), ("up", "worker 1"), ("stop", "worker 2"),
                     ("up", "worker 2"), ("stop", "worker 3"), ("up", "worker 3")], order


def test_master_fifo_commands(ruwsgi, tmp_path):
    first, second = tmp_path / "fifo0", tmp_path / "fifo1"
    srv = start(ruwsgi, "--master-fifo", first, "--master-fifo", second)
    srv.wait_log(r"master FIFO .*fifo0 ready")
    old = set(srv.wait_children(2))
    fifo_send(first, b"s")
    srv.wait_log(r"worker 1 pid \d+ status \w+ requests")
    fifo_send(first, b"x")
    srv.wait_log(r"master FIFO command 'x' is not supported")
    fifo_send(first, b"w")
    srv.wait_log(r"graceful reload of the workers requested \(master FIFO\)")
    wait_until(replaced_all(srv, old), 20, what="new workers")
    # 1 selects the second FIFO; commands are read from it from then on
    fifo_send(first, b"1")
    srv.wait_log(r"master FIFO .*fifo1 ready")
    old = set(srv.children())
    fifo_send(second, b"c")
    srv.wait_log(r"chain reload done", timeout=60)
    assert not (set(srv.children()) & old)
    fifo_send(second, b"q")
    assert srv.wait_exit(timeout=30) == 0
    srv.wait_log(r"graceful stop requested \(master FIFO\)")


def test_reload_and_stop_through_a_pidfile(ruwsgi, tmp_path):
    pidfile = tmp_path / "master.pid"
    srv = start(ruwsgi, "--pidfile", pidfile)
    wait_until(pidfile.exists, 10, what="the pidfile")
    old = set(srv.wait_children(2))
    r = subprocess.run([server_bin(), "--reload", str(pidfile)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "sent SIGHUP to the master (pid %d)" % srv.pid in r.stderr
    srv.wait_log(r"graceful reload requested \(SIGHUP\)")
    wait_until(replaced_all(srv, old), 30, what="new workers")
    bad = subprocess.run([server_bin(), "--stop", str(tmp_path / "missing.pid")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "cannot read" in bad.stderr and "missing.pid" in bad.stderr
    r = subprocess.run([server_bin(), "--stop", str(pidfile)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    srv.wait_exit(timeout=30)
