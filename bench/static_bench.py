#!/usr/bin/env python3
"""Benchmark static files: ruwsgi `static-map` against uWSGI `static-map` and nginx `root`.

Every server serves the same 16 KiB file from the same directory on 127.0.0.1 with 2 worker
processes and its request/access log written to a file; wrk fetches it over kept-alive
connections. Rounds are interleaved (every server once per round, order rotated) and the
table shows medians over rounds. Server CPU per request = Δ(utime+stime of the server's
whole process tree, from /proc/<pid>/stat) / Δrequests, measured around the wrk run only.

usage: .venv/bin/python bench/static_bench.py [--rounds 3] [--duration 5] [--connections 64]
                                              [--threads 2] [--size 16384] [--servers a,b]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (APPS, RUWSGI, VENV_BIN, Server, free_port, med,  # noqa: E402
                 parse_duration, tree_cpu_seconds)

NGINX_CONF = """\
{user}worker_processes 2;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def start(name, root, workdir):
    port = free_port()
    logf = str(workdir / ("%s-requests.log" % name))
    static = "/static=%s" % (root / "static")
    if name == "ruwsgi":
        argv = [RUWSGI, "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", str(APPS["hello"]),
                "--master", "--processes", "2", "--logto", logf, "--static-map", static]
    elif name == "uwsgi":
        argv = [str(VENV_BIN / "uwsgi"), "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file",
                str(APPS["hello"]), "--master", "--processes", "2", "--logto", logf,
                "--die-on-term", "--static-map", static]
    elif name == "nginx":
        d = workdir / "nginx"
        d.mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "",
                                          d=d, port=port, root=root))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)]
    else:
        raise ValueError(name)
    srv = Server(name, argv, port, workdir)
    srv.wait_ready(port)
    return srv


def run_wrk(port, args):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration,
           "--latency", "http://127.0.0.1:%d/static/file.bin" % port]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    out = proc.stdout

    def field(pattern):
        m = re.search(pattern, out)
        if not m:
            raise RuntimeError("wrk output lacks %r (exit %d): %s %s"
                               % (pattern, proc.returncode, out[-400:], proc.stderr[-400:]))
        return m.group(1)

    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(field(r"Requests/sec:\s+([\d.]+)")),
            "requests": int(field(r"(\d+) requests in")),
            "p99_ms": parse_duration(field(r"99%\s+(\S+)")),
            "non2xx": int(errs.group(1)) if errs else 0}


def check(port, size):
    """The server answers the file itself (not an app's hello) before it is measured."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /static/file.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            data += got
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or len(body) != size:
        raise RuntimeError("unexpected answer: %r (%d body bytes)" % (head[:200], len(body)))


def measure(name, root, args, workdir):
    srv = start(name, root, workdir)
    try:
        check(srv.port, args.size)
        warm = argparse.Namespace(**vars(args))
        warm.duration = 1
        run_wrk(srv.port, warm)
        c0 = tree_cpu_seconds(srv.proc.pid)
        r = run_wrk(srv.port, args)
        r["cpu_us_per_req"] = (tree_cpu_seconds(srv.proc.pid) - c0) * 1e6 / max(1, r["requests"])
        return r
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--size", type=int, default=16384, help="file size in bytes")
    ap.add_argument("--servers", default="ruwsgi,uwsgi,nginx")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not installed: bash scripts/setup.sh --bench")
    names = args.servers.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-static-bench-"))
    root = workdir / "www"
    (root / "static").mkdir(parents=True)
    (root / "static" / "file.bin").write_bytes(os.urandom(args.size))
    results = {}
    try:
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for n in order:
                try:
                    r = measure(n, root, args, workdir)
                except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
                    print("round %d %s: FAILED %s" % (rnd + 1, n, e), file=sys.stderr)
                    continue
                results.setdefault(n, []).append(r)
                print("round %d %-7s %9.0f req/s  p99 %6.2f ms  %6.2f µs/req%s" % (
                    rnd + 1, n, r["rps"], r["p99_ms"], r["cpu_us_per_req"],
                    "  non2xx=%d" % r["non2xx"] if r["non2xx"] else ""), file=sys.stderr)
            time.sleep(0.5)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    base = results.get("ruwsgi", [])
    b_rps = med([x["rps"] for x in base])
    b_cpu = med([x["cpu_us_per_req"] for x in base])
    print("\nGET of a %d-byte file, wrk -t%d -c%d -d%ds, %d interleaved rounds, medians\n"
          % (args.size, args.threads, args.connections, args.duration, args.rounds))
    print("| server (2 processes) | req/s median (min to max) | p99 median | server CPU µs/req "
          "median (min to max) | ruwsgi req/s ÷ this | this CPU ÷ ruwsgi CPU |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in names:
        rs = results.get(n, [])
        if not rs:
            continue
        rps = [x["rps"] for x in rs]
        cpu = [x["cpu_us_per_req"] for x in rs]
        print("| %s | %s (%s to %s) | %.2f ms | %.2f (%.2f to %.2f) | %.2f | %.2f |" % (
            n, "{:,.0f}".format(med(rps)), "{:,.0f}".format(min(rps)),
            "{:,.0f}".format(max(rps)), med([x["p99_ms"] for x in rs]), med(cpu), min(cpu),
            max(cpu), b_rps / med(rps) if base else float("nan"),
            med(cpu) / b_cpu if base else float("nan")))


if __name__ == "__main__":
    main()
