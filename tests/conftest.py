"""Fixtures for ruwsgi's end-to-end tests.

`ruwsgi(*args)` starts the real binary (RUWSGI_BIN overrides target/release/ruwsgi) in a
temp dir, waits for its `ruwsgi: listening on ADDR (KIND, fd N)` line(s) and then polls with
a bounded loop until each socket answers a request. Everything it started is killed at
teardown.
"""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import APPS, FLAVOR, Nginx, ServerProcess, server_bin, site_packages  # noqa: E402

FAULT_APP = APPS / "fault.py"


def pytest_report_header(config):
    return "server under test: %s (flavor %s)" % (server_bin(), FLAVOR)


class Factory:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.servers = []

    def __call__(self, *args, ready=True, site=False, n_sockets=None, env=None, cwd=None,
                 timeout=20.0, ready_path="/", name=None):
        """Start the server with `args`.

        site=True adds `--pythonpath <.venv site-packages>` (for Flask/Django apps).
        ready=False returns right after spawning (for exit-code tests); call
        .wait_ready() yourself when needed.
        """
        b = server_bin()
        if not os.path.exists(b):
            pytest.fail("server binary not found: %s (build it with `cargo build --release` "
                        "or set RUWSGI_BIN)" % b)
        args = [str(a) for a in args]
        if site:
            args += ["--pythonpath", site_packages()]
        if FLAVOR == "uwsgi":
            # real uWSGI needs the venv's python for its own plugin; keep it quiet and strict
            args = ["--die-on-term"] + args
        name = name or "server%d" % len(self.servers)
        srv = ServerProcess(args, self.tmp_path / name, env=env, cwd=cwd, n_sockets=n_sockets,
                            name=name)
        self.servers.append(srv)
        if ready:
            srv.wait_ready(timeout=timeout, path=ready_path)
        return srv

    def cleanup(self):
        for srv in self.servers:
            srv.kill()


@pytest.fixture
def ruwsgi(tmp_path):
    f = Factory(tmp_path)
    yield f
    f.cleanup()


@pytest.fixture
def fault_app():
    return str(FAULT_APP)


@pytest.fixture
def nginx(tmp_path):
    if not helpers.nginx_bin():
        pytest.fail("nginx is not installed: run `bash scripts/setup.sh`")
    started = []

    def start(upstream):
        ng = Nginx(upstream, tmp_path / ("nginx%d" % len(started)))
        started.append(ng)
        return ng

    yield start
    for ng in started:
        ng.stop()


@pytest.fixture
def wsgiref_server(tmp_path):
    """Start tests/apps/wsgiref_serve.py (the reference server) in a subprocess."""
    started = []

    def start(*args, env=None, cwd=None):
        name = "wsgiref%d" % len(started)
        srv = ServerProcess([str(APPS / "wsgiref_serve.py")] + [str(a) for a in args],
                            tmp_path / name, bin=str(helpers.VENV_PY), env=env, cwd=cwd,
                            n_sockets=1, name=name)
        started.append(srv)
        srv.wait_ready(timeout=30)
        return srv

    yield start
    for srv in started:
        srv.kill()


@pytest.fixture(scope="session")
def venv_site():
    sp = site_packages()
    if not sp:
        pytest.fail(".venv is missing: run `bash scripts/setup.sh`")
    return sp


def django_admin():
    return str(helpers.VENV / "bin" / "django-admin")


@pytest.fixture(autouse=True)
def _no_leftover_sigpipe():
    # some tests close sockets early; never let SIGPIPE kill pytest
    old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGPIPE, old)


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory):
    """One ruwsgi (master + 2 workers, fault app) shared by a test module.

    At teardown it checks that no worker died while the module's tests ran."""
    f = Factory(tmp_path_factory.mktemp("fault_server"))
    srv = f("--http-socket", "127.0.0.1:0", "--wsgi-file", FAULT_APP, "--master",
            "--processes", "2")
    srv.start_workers = set(srv.wait_children(2))
    yield srv
    try:
        assert "DAMN" not in srv.log_text(), "a worker died during the module:\n" + srv.log_tail()
        assert srv.stop() == 0
    finally:
        f.cleanup()
