#!/usr/bin/env python3
"""Cost of a cache read and write from Python, in ruwsgi, in real uWSGI and with Redis.

Each server runs tests/apps/cache_node.py (master, 2 workers) with the same cache,
`--cache2 name=bench,items=20000,blocksize=128`, and a uwsgi-protocol socket. One HTTP
request makes a worker loop N operations over 10,000 keys with 64-byte values and report
the elapsed time:

    set            uwsgi.cache_update(key, value, 0, "bench")   (update: rounds overwrite)
    get            uwsgi.cache_get(key, "bench")                (every key present)
    remote get     uwsgi.cache_get(key, "bench@127.0.0.1:PORT") (the server's own socket:
                   the other worker answers; ruwsgi->ruwsgi and uWSGI->uWSGI)
    dict get       dict.get(key) in the same worker: the floor of a Python call

Redis is measured from this process (the same Python), with redis-py over one kept TCP
connection to a local `redis-server` (no persistence): SET and GET of the same keys and
values. Rows are medians over rounds of ops/s, then the fastest round of each row (noise
from other processes only slows a round down); the ratio columns divide ruwsgi's figure by
the other's.

usage: python bench/cache_bench.py [--rounds 3] [--scale 1.0] [--max-seconds 300]
                                   [--servers ruwsgi,uwsgi,redis]
RUWSGI_BIN and UWSGI_BIN choose the binaries (default: target/release/ruwsgi, pyuwsgi's
uwsgi from .venv). `bash scripts/setup.sh --bench` installs redis-server and redis-py.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "tests" / "apps" / "cache_node.py"
sys.path.insert(0, str(REPO / "tests"))

import helpers  # noqa: E402

LABELS = {"ruwsgi": "ruwsgi", "uwsgi": "uWSGI", "redis": "Redis (redis-py)"}
CACHE = "name=bench,items=20000,blocksize=128"
KEYS = 10000
VLEN = 64
# (row, what, remote, operations per request at --scale 1)
CASES = [
    ("set", "set", False, 200000),
    ("get", "get", False, 200000),
    ("remote get (tcp)", "get", True, 20000),
    ("dict get (reference)", "dict", False, 2000000),
]


def binary(kind):
    if kind == "ruwsgi":
        return os.environ.get("RUWSGI_BIN", str(REPO / "target" / "release" / "ruwsgi"))
    return helpers.uwsgi_bin()


class Server:
    def __init__(self, kind, workdir):
        self.kind = kind
        extra = ["--die-on-term"] if kind == "uwsgi" else []
        self.srv = helpers.ServerProcess(
            extra + ["--master", "--processes", "2", "--http-socket", "127.0.0.1:0",
                     "--socket", "127.0.0.1:0", "--socket-timeout", "4",
                     "--cache2", CACHE, "--wsgi-file", APP],
            workdir / kind, bin=binary(kind), name=kind)
        self.srv.wait_ready(timeout=30)
        tcp = [x for x in self.srv.listeners if x.kind == "socket" and not x.is_unix][0]
        self.node = "127.0.0.1:%d" % tcp.port

    def run(self, what, remote, n):
        cache = "bench@" + self.node if remote else "bench"
        q = {"op": "bench", "what": what, "n": n, "keys": KEYS, "vlen": VLEN, "cache": cache}
        r = helpers.http_request(self.srv.http.target, "GET", "/?" + urlencode(q),
                                 timeout=300)
        if r.status != 200:
            raise RuntimeError("%s: answered %r" % (self.kind, r))
        out = json.loads(r.body)
        if out["hits"] != n:
            raise RuntimeError("%s %s%s: %d of %d operations succeeded" % (
                self.kind, what, " (remote)" if remote else "", out["hits"], n))
        return n / out["elapsed"]

    def stop(self):
        try:
            self.srv.stop(check_orphans=False)
        except AssertionError:
            pass
        self.srv.kill()


class Redis:
    def __init__(self, workdir):
        import redis  # noqa: F401 - fail early with a clear message
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        d = workdir / "redis"
        d.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(d)],
            stdout=open(d / "log", "w"), stderr=subprocess.STDOUT)
        import redis as r
        self.client = r.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
        keys = [b"bench-key-%d" % i for i in range(KEYS)]
        self.keys = keys
        self.value = helpers_pattern(VLEN)

    def run(self, what, remote, n):
        if what == "dict" or remote:
            return None
        keys, value, c = self.keys, self.value, self.client
        nkeys = len(keys)
        hits = 0
        if what == "set":
            t0 = time.perf_counter()
            for i in range(n):
                if c.set(keys[i % nkeys], value):
                    hits += 1
        else:
            t0 = time.perf_counter()
            for i in range(n):
                if c.get(keys[i % nkeys]) is not None:
                    hits += 1
        elapsed = time.perf_counter() - t0
        if hits != n:
            raise RuntimeError("redis %s: %d of %d operations succeeded" % (what, hits, n))
        return n / elapsed

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def helpers_pattern(n):
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def med(xs):
    return statistics.median(xs) if xs else None


def best(xs):
    return max(xs) if xs else None


def table(results, kinds, stat=med):
    head = "| operation |" + "".join(" %s ops/s |" % LABELS[k] for k in kinds)
    others = [k for k in kinds if k != "ruwsgi"]
    if "ruwsgi" in kinds:
        head += "".join(" ruwsgi ÷ %s |" % LABELS[k] for k in others)
    lines = [head, "|---|" + "---:|" * (head.count("|") - 2)]
    for name, *_ in CASES:
        row = "| %s |" % name
        for k in kinds:
            m = stat(results.get((k, name), []))
            row += " %s |" % ("{:,.0f}".format(m) if m else "n/a")
        if "ruwsgi" in kinds:
            a = stat(results.get(("ruwsgi", name), []))
            for k in others:
                b = stat(results.get((k, name), []))
                row += " %s |" % ("%.2f" % (a / b) if a and b else "")
        lines.append(row)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the operations")
    ap.add_argument("--servers", default="ruwsgi,uwsgi,redis")
    ap.add_argument("--max-seconds", type=float, default=300,
                    help="stop starting new rounds after this long")
    args = ap.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    for k in kinds:
        if k not in LABELS:
            sys.exit("unknown server %r (ruwsgi, uwsgi, redis)" % k)
        if k != "redis" and not os.access(binary(k), os.X_OK):
            sys.exit("%s not found at %s" % (k, binary(k)))
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-cache-bench-"))
    start = time.monotonic()
    servers, results = {}, {}
    try:
        for k in kinds:
            try:
                servers[k] = Redis(workdir) if k == "redis" else Server(k, workdir)
            except Exception as e:  # noqa: BLE001 - report and go on with the others
                print("%s: cannot start: %s" % (k, e), file=sys.stderr)
                continue
            for name, what, remote, n in CASES:  # warm-up, fills the keys for `get`
                try:
                    servers[k].run(what, remote, max(KEYS, int(n * args.scale) // 10))
                except Exception as e:  # noqa: BLE001
                    print("warm-up %s %s: FAILED %s" % (k, name, e), file=sys.stderr)
        for rnd in range(args.rounds):
            if time.monotonic() - start > args.max_seconds:
                print("time budget spent: stopping after %d rounds" % rnd, file=sys.stderr)
                break
            order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for name, what, remote, n in CASES:
                for k in order:
                    if k not in servers:
                        continue
                    try:
                        ops = servers[k].run(what, remote, max(KEYS, int(n * args.scale)))
                    except Exception as e:  # noqa: BLE001
                        print("round %d %s %s: FAILED %s" % (rnd + 1, k, name, e),
                              file=sys.stderr)
                        continue
                    if ops is None:
                        continue
                    results.setdefault((k, name), []).append(ops)
                    print("round %d %-6s %-22s %12.0f ops/s" % (rnd + 1, k, name, ops),
                          file=sys.stderr)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nCache operations from Python, %d keys, %d-byte values, medians over rounds; "
          "servers: --master --processes 2 --cache2 %s; Redis: redis-py, one kept TCP "
          "connection, from the bench process\n" % (KEYS, VLEN, CACHE))
    print(table(results, kinds))
    # Another process's burst only ever slows a round down, so the fastest round of each
    # row is the steadier figure on a shared machine (timeit's convention).
    print("\nFastest round of each row (ops/s):\n")
    print(table(results, kinds, stat=best))


if __name__ == "__main__":
    main()
