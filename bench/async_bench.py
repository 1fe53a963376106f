#!/usr/bin/env python3
"""Async servers under 1,000 concurrent clients, each request waiting 50 ms on I/O.

The app (bench/apps/iowait.py) arms a timerfd for 50 ms and waits for it to become
readable through the server's own event loop, then answers 7 bytes. Every server runs 2
worker processes on 127.0.0.1 with room for all the clients at once; wrk drives it with
1,000 keep-alive connections. With 50 ms per request the ceiling is 20,000 req/s
(1,000 / 0.05 s); below it, the difference is what each server spends per request.

  ruwsgi/greenlet   ruwsgi --async 1000 --greenlet   (wait_fd_read + suspend())
  ruwsgi/generator  ruwsgi --async 1000              (yield wait_fd_read)
  uwsgi/async       uWSGI --async 1000 (pyuwsgi has no greenlet plugin: generator style)
  uwsgi/ugreen      uWSGI --async 1000 --ugreen      (wait_fd_read + suspend(); its
                    workers may crash under Python 3.11: then reported as failed)
  gunicorn/gevent   gunicorn -k gevent --worker-connections 1000 (gevent.socket.wait_read)
  granian/asgi      granian --interface asgi (asyncio add_reader; Granian's async interface)

usage: .venv/bin/python bench/async_bench.py [--duration 10] [--connections 1000]
                                             [--servers a,b] [--rounds 1]
Bounded: every wrk run lasts --duration seconds (plus a 2 s warm-up), every server start
is bounded by 30 s; a server that fails is reported and skipped.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import RUWSGI, VENV_BIN, Server, free_port, parse_duration, tree_cpu_seconds  # noqa: E402

APP = BENCH / "apps" / "iowait.py"
SERVERS = ["ruwsgi/greenlet", "ruwsgi/generator", "uwsgi/async", "uwsgi/ugreen",
           "gunicorn/gevent", "granian/asgi"]


def site_packages():
    out = subprocess.run([str(VENV_BIN / "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def argv_for(name, port, cores, logf):
    addr = "127.0.0.1:%d" % port
    wsgi = ["--http-socket", addr, "--wsgi-file", str(APP), "--master", "--processes", "2",
            "--listen", "4096", "--disable-logging"]
    if name == "ruwsgi/greenlet":
        return [RUWSGI, *wsgi, "--async", str(cores), "--greenlet",
                "--pythonpath", site_packages(), "--logto", logf]
    if name == "ruwsgi/generator":
        return [RUWSGI, *wsgi, "--async", str(cores), "--callable", "gen_application",
                "--logto", logf]
    if name == "uwsgi/async":
        return [str(VENV_BIN / "uwsgi"), *wsgi, "--async", str(cores),
                "--callable", "gen_application", "--die-on-term", "--logto", logf]
    if name == "uwsgi/ugreen":
        return [str(VENV_BIN / "uwsgi"), *wsgi, "--async", str(cores), "--ugreen",
                "--die-on-term", "--logto", logf]
    if name == "gunicorn/gevent":
        return [str(VENV_BIN / "gunicorn"), "-k", "gevent", "-w", "2",
                "--worker-connections", str(cores), "--backlog", "4096", "-b", addr,
                "--chdir", str(APP.parent), "iowait:gevent_application"]
    if name == "granian/asgi":
        return [str(VENV_BIN / "granian"), "--interface", "asgi", "--workers", "2",
                "--backlog", "4096", "--host", "127.0.0.1", "--port", str(port),
                "--working-dir", str(APP.parent), "--no-ws", "iowait:asgi_application"]
    raise ValueError(name)


def missing(name):
    exe = name.split("/")[0]
    if exe == "ruwsgi":
        return None if os.access(RUWSGI, os.X_OK) else "no %s (cargo build --release)" % RUWSGI
    if not (VENV_BIN / exe).exists():
        return "%s not installed (bash scripts/setup.sh --bench)" % exe
    if name == "gunicorn/gevent":
        r = subprocess.run([str(VENV_BIN / "python"), "-c", "import gevent"], capture_output=True)
        if r.returncode:
            return "gevent not installed (bash scripts/setup.sh --bench)"
    return None


def wrk(port, connections, duration, threads=2):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % duration, "--latency",
           "--timeout", "10s", "http://127.0.0.1:%d/" % port]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    out = proc.stdout

    def field(pattern):
        m = re.search(pattern, out, re.M)
        if not m:
            raise RuntimeError("wrk output lacks %r: %s %s" % (pattern, out[-300:],
                                                               proc.stderr[-300:]))
        return m.group(1)

    def duration(pattern):
        try:
            return parse_duration(field(pattern))
        except (AttributeError, RuntimeError, ValueError):
            return float("nan")

    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(field(r"Requests/sec:\s+([\d.]+)")),
        "requests": int(field(r"(\d+) requests in")),
        "p50_ms": duration(r"^\s+50%\s+(\S+)"),
        "p99_ms": duration(r"^\s+99%\s+(\S+)"),
        "non2xx": int(errs.group(1)) if errs else 0,
        "socket_errors": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def measure(name, args, workdir):
    port = free_port()
    logf = str(workdir / ("%s.requests.log" % name.replace("/", "-")))
    srv = Server(name, argv_for(name, port, args.cores, logf), port, workdir)
    try:
        srv.wait_ready(port, timeout=30)
        wrk(port, args.connections, 2)
        c0 = tree_cpu_seconds(srv.proc.pid)
        r = wrk(port, args.connections, args.duration)
        if r["requests"] == 0 or srv.proc.poll() is not None:
            raise RuntimeError("no request served (server log: %s)" % srv.log.name)
        r["cpu_us_per_req"] = (tree_cpu_seconds(srv.proc.pid) - c0) * 1e6 / max(1, r["requests"])
        return r
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--cores", type=int, default=1000,
                    help="async cores / gevent connections per worker")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--servers", default=",".join(SERVERS))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not installed: bash scripts/setup.sh --bench")
    names = []
    for n in args.servers.split(","):
        why = missing(n)
        if why:
            print("skipping %s: %s" % (n, why), file=sys.stderr)
        else:
            names.append(n)
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-async-bench-"))
    failed = False
    results = {}
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for n in order:
            try:
                r = measure(n, args, workdir)
            except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
                print("round %d %s: FAILED %s" % (rnd + 1, n, e), file=sys.stderr)
                failed = True
                continue
            results.setdefault(n, []).append(r)
            print("round %d %-17s %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %6.1f µs/req  "
                  "non-2xx %d  socket errors %d" % (
                      rnd + 1, n, r["rps"], r["p50_ms"], r["p99_ms"], r["cpu_us_per_req"],
                      r["non2xx"], r["socket_errors"]), file=sys.stderr)
    med = statistics.median
    base = results.get("ruwsgi/greenlet") or results.get("ruwsgi/generator")
    base_rps = med([x["rps"] for x in base]) if base else float("nan")
    print("\nwrk -t2 -c%d -d%ds, app waits 50 ms on a timerfd per request, 2 processes each, "
          "%d round(s), medians\n" % (args.connections, args.duration, args.rounds))
    print("| server | req/s | ÷ ruwsgi/greenlet | p50 | p99 | server CPU µs/req | non-2xx "
          "| wrk socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        rs = results.get(n)
        if not rs:
            print("| %s | failed | | | | | | |" % n)
            continue
        rps = med([x["rps"] for x in rs])
        print("| %s | %s | %.2f | %.1f ms | %.1f ms | %.1f | %d | %d |" % (
            n, "{:,.0f}".format(rps), rps / base_rps, med([x["p50_ms"] for x in rs]),
            med([x["p99_ms"] for x in rs]), med([x["cpu_us_per_req"] for x in rs]),
            sum(x["non2xx"] for x in rs), sum(x["socket_errors"] for x in rs)))
    print("\nuWSGI's http-socket closes the connection after each response (wrk reconnects and "
          "counts each close as a read error); a failed server's log is named above.")
    if not failed:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
