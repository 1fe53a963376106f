#!/usr/bin/env python3
"""RT-16, the soak test (http-rules.md §2): not part of CI; run it by hand or nightly.

A master with 2 workers (`max-requests 500`, `min-worker-lifetime 0`) serves 4 connections
of load for DURATION seconds (default 600) while it gets a SIGHUP every PERIOD seconds
(default 60). At the end:

- the load saw 0 errors and 0 non-2xx responses;
- the master's RSS grew by less than 5 MiB;
- the master's open file descriptors are as many, of the same kinds, as after start;
- no child of the master is a zombie.

usage: python scripts/soak.py [--duration 600] [--period 60]
RUWSGI_BIN chooses the binary (default: target/release/ruwsgi). Exit status 0 when every
check holds, 1 otherwise (each failed check is printed).
"""
import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import helpers  # noqa: E402
from load import run_load  # noqa: E402


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def fds(pid):
    """The master's open fds by kind (a re-exec on reload recreates its pipes and channels,
    so their inode numbers change; their number and kinds must not)."""
    kinds = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        kinds.append(target.split(":[")[0] if ":[" in target else target)
    return sorted(kinds)


def zombies(pid):
    out = []
    for child in helpers.children_of(pid):
        try:
            with open("/proc/%d/stat" % child) as f:
                if f.read().split(") ")[1].startswith("Z"):
                    out.append(child)
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--period", type=float, default=60)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ruwsgi-soak-"))
    srv = helpers.ServerProcess(
        ["--http-socket", "127.0.0.1:0", "--wsgi-file", str(REPO / "tests" / "apps" / "fault.py"),
         "--master", "--processes", "2", "--max-requests", "500", "--min-worker-lifetime", "0",
         "--disable-logging"], work, name="soak")
    try:
        srv.wait_ready(timeout=30)
        master = srv.pid
        time.sleep(1)   # let the start settle before the baseline (measurement, not readiness)
        rss0, fds0 = rss(master), fds(master)
        hups = int(args.duration // args.period)
        events = [((i + 1) * args.period, lambda: os.kill(master, signal.SIGHUP))
                  for i in range(hups) if (i + 1) * args.period < args.duration]
        print("soak: %d s, SIGHUP every %d s (%d reloads), 4 connections"
              % (args.duration, args.period, len(events)), flush=True)
        res = run_load(srv.addr, "/", connections=4, duration=args.duration, keepalive=False,
                       max_requests=10 ** 9, events=events)
        time.sleep(2)   # the last reload's workers settle (measurement, not readiness)
        failures = []
        if res.errors or res.non2xx:
            failures.append("load: %s" % res.summary())
        growth = rss(master) - rss0
        if growth >= 5 << 20:
            failures.append("master RSS grew by %.1f MiB" % (growth / 2 ** 20))
        if fds(master) != fds0:
            failures.append("master fds changed: %r -> %r" % (fds0, fds(master)))
        z = zombies(master)
        if z:
            failures.append("zombie children: %r" % z)
        print("soak: %s; master RSS %+.1f MiB; %d fds" % (res.summary(), growth / 2 ** 20,
                                                           len(fds0)))
        for f in failures:
            print("FAILED: " + f)
        return 1 if failures else 0
    finally:
        srv.stop(check_orphans=False)


if __name__ == "__main__":
    sys.exit(main())
