#!/usr/bin/env python3
"""The spooler's two rates, in ruwsgi and in real uWSGI (pyuwsgi), in one run.

1. spool() calls per second from a worker: bench/apps/spool_app.py loops N uwsgi.spool()
   calls (three small vars) in one request. The target directory is a `spooler-external`
   one, so no spooler process competes for the CPU while the worker writes. ruwsgi is
   measured twice: by default (`spooler-fsync` off, uWSGI's behaviour: atomic, page-cache
   durable) and with `spooler-fsync` on (each file and its directory are synced before
   spool() returns).
2. Tasks run per second by one spooler: the N files written in 1 are handed to an
   instance with `--spooler DIR --spooler-processes 1 --spooler-quiet`; the task function
   (returns SPOOL_OK at once) times its first to its last task.

Rows are medians over rounds; the ratio column divides ruwsgi by uWSGI (above 1: ruwsgi is
faster). The spool directory lives under --dir (default: a temp dir under /tmp).

usage: python bench/spool_bench.py [--rounds 3] [--tasks 5000] [--dir DIR]
RUWSGI_BIN and UWSGI_BIN choose the binaries (default: target/release/ruwsgi, pyuwsgi's
uwsgi from .venv).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "bench" / "apps" / "spool_app.py"
sys.path.insert(0, str(REPO / "tests"))

import helpers  # noqa: E402

ROWS = [
    ("spool() calls/s, ruwsgi default (spooler-fsync off)", "spool"),
    ("spool() calls/s, ruwsgi spooler-fsync on", "spool-fsync"),
    ("tasks/s run by one spooler", "run"),
]


def binary(kind):
    if kind == "ruwsgi":
        return os.environ.get("RUWSGI_BIN", str(REPO / "target" / "release" / "ruwsgi"))
    return helpers.uwsgi_bin()


def server(kind, workdir, name, args, env):
    extra = ["--die-on-term"] if kind == "uwsgi" else []
    srv = helpers.ServerProcess(
        extra + ["--master", "--processes", "1", "--http-socket", "127.0.0.1:0",
                 "--wsgi-file", APP] + args,
        workdir / name, bin=binary(kind), name=name, env=env)
    srv.wait_ready(timeout=30, path="/?n=0")
    return srv


def stop(srv):
    try:
        srv.stop(check_orphans=False)
    except AssertionError:
        pass
    srv.kill()


def count_tasks(d):
    return sum(1 for p in d.iterdir() if p.name.startswith("uwsgi_spoolfile_on_"))


def spool_rate(kind, workdir, spool_dir, n, fsync):
    args = ["--spooler-external", str(spool_dir)]
    if kind == "ruwsgi":
        args += ["--spooler-fsync=%d" % int(fsync)]
    srv = server(kind, workdir, "%s-spool" % kind, args, {})
    try:
        r = helpers.http_request(srv.http.target, "GET", "/?n=%d" % n, timeout=600)
        if r.status != 200:
            raise RuntimeError("%s answered %r" % (kind, r))
        out = json.loads(r.body)
    finally:
        stop(srv)
    written = count_tasks(spool_dir)
    if written != n:
        raise RuntimeError("%s: %d of %d tasks written" % (kind, written, n))
    return n / out["elapsed"]


def run_rate(kind, workdir, spool_dir, n):
    result = workdir / ("%s-result" % kind)
    if result.exists():
        result.unlink()
    srv = server(kind, workdir, "%s-run" % kind,
                 ["--spooler", str(spool_dir), "--spooler-processes", "1", "--spooler-quiet"],
                 {"BENCH_TASKS": str(n), "BENCH_RESULT": str(result)})
    try:
        helpers.wait_until(result.exists, 600, interval=0.05, what="%s: %d tasks run" % (kind, n))
        seconds = float(result.read_text())
    finally:
        stop(srv)
    left = count_tasks(spool_dir)
    if left:
        raise RuntimeError("%s: %d task files left" % (kind, left))
    return (n - 1) / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--dir", default=None, help="where the spool directories go")
    ap.add_argument("--servers", default="ruwsgi,uwsgi")
    args = ap.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    for k in kinds:
        if not os.access(binary(k), os.X_OK):
            sys.exit("%s not found at %s" % (k, binary(k)))
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-spool-bench-", dir=args.dir))
    results = {}
    try:
        for rnd in range(args.rounds):
            order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for k in order:
                for fsync in ([True, False] if k == "ruwsgi" else [False]):
                    spool_dir = workdir / ("%s-dir" % k)
                    shutil.rmtree(spool_dir, ignore_errors=True)
                    spool_dir.mkdir()
                    rate = spool_rate(k, workdir, spool_dir, args.tasks, fsync)
                    key = "spool-fsync" if fsync else "spool"
                    results.setdefault((k, key), []).append(rate)
                    print("round %d %-6s %-12s %10.0f/s" % (rnd + 1, k, key, rate), file=sys.stderr)
                    if not fsync:
                        rate = run_rate(k, workdir, spool_dir, args.tasks)
                        results.setdefault((k, "run"), []).append(rate)
                        print("round %d %-6s %-12s %10.0f/s" % (rnd + 1, k, "run", rate),
                              file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nSpooler rates, %d tasks per round, medians over %d rounds "
          "(--master --processes 1; spool dir under %s)\n"
          % (args.tasks, args.rounds, args.dir or tempfile.gettempdir()))
    print("| measure | ruwsgi | uWSGI | ruwsgi ÷ uWSGI |")
    print("|---|---:|---:|---:|")
    for label, key in ROWS:
        a = results.get(("ruwsgi", key))
        b = results.get(("uwsgi", "spool" if key == "spool-fsync" else key))
        a = statistics.median(a) if a else None
        b = statistics.median(b) if b else None
        print("| %s | %s | %s | %s |" % (
            label, "{:,.0f}".format(a) if a else "n/a", "{:,.0f}".format(b) if b else "n/a",
            "%.2f" % (a / b) if a and b else ""))


if __name__ == "__main__":
    main()
