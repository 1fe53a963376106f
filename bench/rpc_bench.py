#!/usr/bin/env python3
"""Per-call cost of RPC in ruwsgi and in real uWSGI, measured in one run.

For each server two instances run bench/apps/rpc_app.py with a master and 1 worker each: a
*target* (uwsgi-protocol sockets over TCP and a unix socket) and a *caller* (HTTP socket).
One HTTP request to the caller makes its worker loop N calls and report the elapsed time:

    call         uwsgi.call(b"ping", 16 bytes) in the caller itself (local)
    rpc tcp      uwsgi.rpc("127.0.0.1:PORT", b"ping", 16 bytes) to the target
    rpc unix     uwsgi.rpc("/path/target.sock", ...) to the target
    rpc tcp big  as rpc tcp, but b"big": a 100,000-byte reply (modifier2 5 form)

Remote calls go ruwsgi->ruwsgi and uWSGI->uWSGI. Rounds alternate the servers' order; the
table shows the median time per call over rounds, its min to max, the CPU time both
instances' process trees used per call, and uWSGI's time ÷ ruwsgi's (above 1: ruwsgi is
faster).

Before the table it prints the floor: the round trip of 16 bytes over a kept connection
between two plain Python processes (TCP and unix), measured the same way in the same run.
No server's remote call can be faster than that.

usage: python bench/rpc_bench.py [--rounds 5] [--scale 1.0] [--servers ruwsgi,uwsgi]
                                 [--max-seconds 600] [--cpus 0]
RUWSGI_BIN and UWSGI_BIN choose the binaries (default: target/release/ruwsgi, pyuwsgi's
uwsgi from .venv or next to this Python).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
APP = BENCH / "apps" / "rpc_app.py"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

import helpers  # noqa: E402
from run import tree_cpu_seconds  # noqa: E402

LABELS = {"ruwsgi": "ruwsgi", "uwsgi": "uWSGI"}
# (row name, mode, function, target socket, calls per request at --scale 1)
CASES = [
    ("call (local)", "call", "ping", None, 2000000),
    ("rpc tcp", "rpc", "ping", "tcp", 10000),
    ("rpc unix", "rpc", "ping", "unix", 10000),
    ("rpc tcp, 100 KB reply", "rpc", "big", "tcp", 5000),
]


def binary(kind):
    if kind == "ruwsgi":
        return os.environ.get("RUWSGI_BIN", str(REPO / "target" / "release" / "ruwsgi"))
    return helpers.uwsgi_bin()


class Pair:
    """A caller and a target instance of one server."""

    def __init__(self, kind, workdir):
        self.kind = kind
        d = workdir / kind
        extra = ["--die-on-term"] if kind == "uwsgi" else []
        self.sock = str(d / "target" / "target.sock")
        self.target = helpers.ServerProcess(
            extra + ["--master", "--processes", "1", "--socket", "127.0.0.1:0",
                     "--socket", self.sock, "--wsgi-file", APP],
            d / "target", bin=binary(kind), name="target")
        self.caller = helpers.ServerProcess(
            extra + ["--master", "--processes", "1", "--http-socket", "127.0.0.1:0",
                     "--wsgi-file", APP],
            d / "caller", bin=binary(kind), name="caller")
        for srv in (self.target, self.caller):
            srv.wait_ready(timeout=30)
        tcp = [x for x in self.target.listeners if not x.is_unix][0]
        self.nodes = {"tcp": "127.0.0.1:%d" % tcp.port, "unix": self.sock}

    def run(self, mode, fn, where, n, timeout):
        q = {"mode": mode, "fn": fn, "n": n}
        if where:
            q["node"] = self.nodes[where]
        c0 = tree_cpu_seconds(self.caller.pid) + tree_cpu_seconds(self.target.pid)
        r = helpers.http_request(self.caller.http.target, "GET", "/?" + urlencode(q),
                                 timeout=timeout)
        c1 = tree_cpu_seconds(self.caller.pid) + tree_cpu_seconds(self.target.pid)
        if r.status != 200:
            raise RuntimeError("%s: caller answered %r" % (self.kind, r))
        out = json.loads(r.body)
        if out["failed"] or not out["last_ok"]:
            raise RuntimeError("%s %s %s: %d of %d calls failed, last result ok: %s"
                               % (self.kind, mode, where, out["failed"], n, out["last_ok"]))
        return {"us_per_call": out["elapsed"] * 1e6 / n, "cpu_us_per_call": (c1 - c0) * 1e6 / n}

    def stop(self):
        for srv in (self.caller, self.target):
            try:
                srv.stop(check_orphans=False)
            except AssertionError:
                srv.kill()
            srv.kill()


def round_trip_floor(kind, n=20000):
    """µs per 16-byte round trip over a kept connection between two Python processes."""
    d = tempfile.mkdtemp(prefix="ruwsgi-rpc-floor-")
    try:
        if kind == "tcp":
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            addr = ls.getsockname()
        else:
            addr = os.path.join(d, "floor.sock")
            ls = socket.socket(socket.AF_UNIX)
            ls.bind(addr)
        ls.listen(1)
        pid = os.fork()
        if pid == 0:
            try:
                c, _ = ls.accept()
                if kind == "tcp":
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    got = c.recv(4096)
                    if not got:
                        break
                    c.sendall(got)
            finally:
                os._exit(0)
        ls.close()
        s = socket.socket(socket.AF_INET if kind == "tcp" else socket.AF_UNIX)
        s.settimeout(10)
        s.connect(addr)
        if kind == "tcp":
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = b"0123456789abcdef"
        for _ in range(1000):
            s.sendall(msg)
            s.recv(4096)
        t = time.perf_counter()
        for _ in range(n):
            s.sendall(msg)
            s.recv(4096)
        elapsed = time.perf_counter() - t
        s.close()
        os.waitpid(pid, 0)
        return elapsed * 1e6 / n
    finally:
        shutil.rmtree(d, ignore_errors=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def table(results, kinds):
    head = "| call |" + "".join(" %s µs/call median (min to max) | %s CPU µs/call |"
                                 % (LABELS[k], LABELS[k]) for k in kinds)
    if {"ruwsgi", "uwsgi"} <= set(kinds):
        head += " uWSGI time ÷ ruwsgi time |"
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for name, *_ in CASES:
        row = "| %s |" % name
        for k in kinds:
            rs = results.get((k, name), [])
            if not rs:
                row += " failed | |"
                continue
            t = [x["us_per_call"] for x in rs]
            row += " %.2f (%.2f to %.2f) | %.2f |" % (
                med(t), min(t), max(t), med([x["cpu_us_per_call"] for x in rs]))
        if {"ruwsgi", "uwsgi"} <= set(kinds):
            a, b = results.get(("ruwsgi", name)), results.get(("uwsgi", name))
            row += (" %.2f |" % (med([x["us_per_call"] for x in b]) /
                                 med([x["us_per_call"] for x in a])) if a and b else " |")
        lines.append(row)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the calls per request")
    ap.add_argument("--servers", default="ruwsgi,uwsgi")
    ap.add_argument("--max-seconds", type=float, default=600,
                    help="stop starting new rounds after this long")
    ap.add_argument("--cpus", default="",
                    help="run everything on these CPUs only (e.g. 0): see bench/README.md")
    args = ap.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    kinds = [k for k in args.servers.split(",") if k]
    for k in kinds:
        if k not in LABELS:
            sys.exit("unknown server %r (ruwsgi, uwsgi)" % k)
        if not os.access(binary(k), os.X_OK):
            sys.exit("%s not found at %s" % (k, binary(k)))
    floor = {k: med([round_trip_floor(k) for _ in range(3)]) for k in ("tcp", "unix")}
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-rpc-bench-"))
    start = time.monotonic()
    pairs = {}
    results = {}
    try:
        for k in kinds:
            pairs[k] = Pair(k, workdir)
            for name, mode, fn, where, n in CASES:         # warm-up
                pairs[k].run(mode, fn, where, max(1, int(n * args.scale) // 10), timeout=120)
        for rnd in range(args.rounds):
            if time.monotonic() - start > args.max_seconds:
                print("time budget spent: stopping after %d rounds" % rnd, file=sys.stderr)
                break
            order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for name, mode, fn, where, n in CASES:
                for k in order:
                    n_calls = max(1, int(n * args.scale))
                    try:
                        r = pairs[k].run(mode, fn, where, n_calls, timeout=120)
                    except Exception as e:  # noqa: BLE001 - report and go on with the others
                        print("round %d %s %s: FAILED %s" % (rnd + 1, k, name, e),
                              file=sys.stderr)
                        continue
                    results.setdefault((k, name), []).append(r)
                    print("round %d %-6s %-22s %9.2f µs/call  %8.2f CPU µs/call" % (
                        rnd + 1, k, name, r["us_per_call"], r["cpu_us_per_call"]),
                        file=sys.stderr)
    finally:
        for p in pairs.values():
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nRPC per-call time, %d rounds, medians; each server: caller and target with "
          "--master --processes 1; CPU = both instances' process trees%s"
          % (len(next(iter(results.values()), [])),
             "; all on CPUs %s" % args.cpus if args.cpus else ""))
    print("floor (16-byte round trip between two Python processes, kept connection): "
          "tcp %.2f µs, unix %.2f µs\n" % (floor["tcp"], floor["unix"]))
    print(table(results, kinds))


if __name__ == "__main__":
    main()
