"""The master: privileges, reloads, the child command channel, mules."""
import os
import pwd
import grp
import shutil
import signal
import tempfile

import pytest
import requests

from helpers import wait_until

HELLO_APP = (
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [b'hello']\n"
)


@pytest.fixture
def world_dir():
    """A directory every user can read (outside /root and pytest's 0700 tmp dirs)."""
    d = tempfile.mkdtemp(prefix="ruwsgi-master-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_file(d, name, text):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def proc_ids(pid):
    """(real uid, effective uid, real gid, effective gid) of pid, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        lines = f.read().splitlines()
    field = {l.split(":", 1)[0]: l.split(":", 1)[1].split() for l in lines if ":" in l}
    uid, gid = field["Uid"], field["Gid"]
    return int(uid[0]), int(uid[1]), int(gid[0]), int(gid[1])


# --------------------------------------------------------------------------- privileges

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_uid_gid_drop_after_runtime_start_and_reload(ruwsgi, world_dir):
    """The interpreter may be unreadable by the target user (it lives under /root here):
    the runtime starts as root, then privileges drop before the app loads. A reload after
    the drop cannot re-exec (the new image could not load the runtime): the master says
    so and replaces the workers only."""
    nobody = pwd.getpwnam("nobody").pw_uid
    nogroup = grp.getgrnam("nogroup").gr_gid
    app = write_file(world_dir, "app.py", HELLO_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
                 "--uid", "nobody", "--gid", "nogroup", cwd=world_dir)
    r = requests.get(srv.url, timeout=5)
    assert (r.status_code, r.content) == (200, b"hello")
    before = srv.wait_children(2)
    for pid in before + [srv.pid]:
        assert proc_ids(pid) == (nobody, nobody, nogroup, nogroup), pid
    assert "running ruwsgi as root without uid/gid" not in srv.log_text()

    srv.signal(signal.SIGHUP)
    srv.wait_log(r"ruwsgi: graceful reload requested \(SIGHUP\)")
    srv.wait_log(r"ruwsgi: cannot re-exec as uid %d \(probe failed: .+\): "
                 r"reloading the workers only" % nobody)
    srv.wait_log(r"ruwsgi: reload done, generation 1 ready")
    after = wait_until(
        lambda: (lambda k: k if len(k) == 2 and not set(k) & set(before) else None)(
            srv.children()), 15, what="two new workers")
    for pid in after + [srv.pid]:
        assert proc_ids(pid) == (nobody, nobody, nogroup, nogroup), pid
    r = requests.get(srv.url, timeout=5)
    assert (r.status_code, r.content) == (200, b"hello")
    assert "DAMN" not in srv.log_text(), srv.log_tail()
    assert srv.stop(signal.SIGTERM) == 0


# --------------------------------------------------------------------------- channel

RELOAD_APP = (
    "import os\n"
    "import uwsgi\n"
    "def application(environ, start_response):\n"
    "    if environ['PATH_INFO'] == '/reload':\n"
    "        uwsgi.reload()\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [str(os.getpid()).encode()]\n"
)


def test_uwsgi_reload_goes_through_the_channel(ruwsgi, tmp_path):
    app = tmp_path / "reload_app.py"
    app.write_text(RELOAD_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "1")
    before = srv.wait_children(1)
    r = requests.get(srv.url + "/reload", timeout=5)
    assert r.status_code == 200
    assert int(r.text) == before[0]
    srv.wait_log(r"ruwsgi: graceful reload requested \(worker 1\)")
    srv.wait_log(r"ruwsgi: reload done, generation 1 ready")
    after = wait_until(
        lambda: (lambda k: k if len(k) == 1 and k != before else None)(srv.children()),
        15, what="a new worker")
    assert int(requests.get(srv.url, timeout=5).text) == after[0]
    assert "SIGHUP" not in srv.log_text()
    assert srv.stop(signal.SIGTERM) == 0


def test_max_requests_asks_the_master_for_a_replacement(ruwsgi, tmp_path):
    app = tmp_path / "pid_app.py"
    app.write_text(RELOAD_APP)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "1",
                 "--max-requests", "3", "--min-worker-lifetime", "0", ready_path="/x")
    first = srv.wait_children(1)[0]
    pids = [int(requests.get(srv.url, timeout=5).text) for _ in range(2)]
    assert pids == [first, first]
    srv.wait_log(r"worker 1 \(pid: %d\) asked to be replaced: stopping it gracefully" % first)
    srv.wait_log(r"worker 1 \(pid: %d\) recycled after 3 requests" % first)
    srv.wait_log(r"Respawned ruwsgi worker 1 \(new pid: \d+\)")
    assert int(requests.get(srv.url, timeout=5).text) != first
    assert "DAMN" not in srv.log_text()
    assert srv.stop(signal.SIGTERM) == 0


# --------------------------------------------------------------------------- mules

MULE_SCRIPT = (
    "import os\n"
    "import time\n"
    "import uwsgi\n"
    "with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mule-%d' % os.getpid()), 'w') as f:\n"
    "    f.write('%d %d %d' % (uwsgi.mule_id(), uwsgi.worker_id(), os.getpid()))\n"
    "while True:\n"
    "    time.sleep(1)\n"
)

MULE_ID_APP = (
    "import uwsgi\n"
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
    "    return [('%d %d' % (uwsgi.mule_id(), uwsgi.worker_id())).encode()]\n"
)


def spawned_mules(srv, count, start=0):
    """{mule id: pid} from the first `count` spawn/respawn lines after `start`."""
    found = {}
    for m in srv.wait_log(r"(?:spawned ruwsgi mule (\d+) \(pid: (\d+)\)|"
                          r"Respawned ruwsgi mule (\d+) \(new pid: (\d+)\))",
                          count=count, start=start):
        mule_id = m.group(1) or m.group(3)
        found[int(mule_id)] = int(m.group(2) or m.group(4))
    return found


def mule_reports(d):
    """{pid: (mule_id, worker_id, pid)} written by running mule scripts."""
    out = {}
    for name in os.listdir(d):
        if name.startswith("mule-"):
            with open(os.path.join(d, name)) as f:
                text = f.read()
            if text:
                mule_id, worker_id, pid = map(int, text.split())
                out[pid] = (mule_id, worker_id, pid)
    return out


def test_mules_plain_and_script(ruwsgi, tmp_path):
    app = tmp_path / "app.py"
    app.write_text(MULE_ID_APP)
    script = tmp_path / "mule_script.py"
    script.write_text(MULE_SCRIPT)
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", app, "--processes", "2",
                 "--mules", "2", "--mule", script)
    srv.wait_log(r"master process started \(pid: \d+, generation 0, 2 workers, 3 mules\)")
    mules = spawned_mules(srv, 3)
    assert sorted(mules) == [1, 2, 3], mules
    children = srv.wait_children(5)
    assert set(mules.values()) <= set(children)

    # only mule 3 runs the script; it sees its own id, and worker_id() 0
    reports = wait_until(lambda: mule_reports(tmp_path), 10, what="the mule script's report")
    assert reports == {mules[3]: (3, 0, mules[3])}, reports
    # a worker sees mule_id() 0
    assert requests.get(srv.url, timeout=5).text.split()[0] == "0"

    # a killed mule is logged and respawned; a script mule runs its script again
    for mule_id in (1, 3):
        mark = srv.log_len()
        os.kill(mules[mule_id], signal.SIGKILL)
        srv.wait_log(r"DAMN ! mule %d \(pid: %d\) died, killed by signal 9 :\( trying respawn"
                     % (mule_id, mules[mule_id]), start=mark)
        new_pid = spawned_mules(srv, 1, start=mark)[mule_id]
        assert new_pid != mules[mule_id]
        mules[mule_id] = new_pid
    reports = wait_until(lambda: mules[3] in mule_reports(tmp_path) and mule_reports(tmp_path),
                         10, what="the respawned script's report")
    assert reports[mules[3]] == (3, 0, mules[3])
    assert "DAMN ! worker" not in srv.log_text()

    # SIGTERM stops workers and mules (the script mule by its stop signal)
    kids = srv.children()
    assert srv.stop(signal.SIGTERM) == 0
    log = srv.log_text()
    for mule_id in (1, 2, 3):
        assert "mule %d (pid: %d) stopped" % (mule_id, mules[mule_id]) in log, log
    assert "goodbye to ruwsgi." in log
    for pid in kids:
        assert not os.path.exists("/proc/%d/status" % pid) or pid_gone(pid), pid


def pid_gone(pid):
    from helpers import pid_alive
    return not pid_alive(pid)
