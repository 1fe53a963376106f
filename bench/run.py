#!/usr/bin/env python3
"""Benchmark ruwsgi against uWSGI, Gunicorn, Granian and bjoern on one machine.

Each server runs the same app with 2 worker processes on 127.0.0.1; wrk drives it.
Rounds are interleaved (every server once per round, order rotated) and the table shows
medians over rounds. Server CPU per request = Δ(utime+stime of the server's whole process
tree, from /proc/<pid>/stat) / Δrequests, measured around the wrk run only.

usage: .venv/bin/python bench/run.py [--rounds 3] [--duration 5] [--connections 64]
                                     [--threads 2] [--apps hello,echo] [--servers a,b]
Install the peers first: bash scripts/setup.sh --bench
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV_BIN = REPO / ".venv" / "bin"
RUWSGI = os.environ.get("RUWSGI_BIN", str(REPO / "target" / "release" / "ruwsgi"))
APPS = {"hello": BENCH / "apps" / "hello.py", "echo": BENCH / "apps" / "echo.py"}
CLK_TCK = os.sysconf("SC_CLK_TCK")

sys.path.insert(0, str(REPO / "tests"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_pids(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_seconds(root):
    total = 0
    for p in tree_pids(root):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def http_ok(port, path="/", timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


class Server:
    def __init__(self, name, argv, port, workdir, env=None, cwd=None, front=None):
        self.name = name
        self.port = port
        self.log = open(workdir / ("%s.log" % name.replace("/", "-")), "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e, cwd=cwd,
                                     start_new_session=True)
        self.front = front      # an nginx in front, stopped with the server

    def wait_ready(self, port, timeout=30):
        deadline = time.monotonic() + timeout
        while not http_ok(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s did not start (see its log)" % self.name)
            time.sleep(0.1)

    def stop(self):
        if self.front:
            self.front.stop()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self.log.close()


def start(name, app, workdir):
    port = free_port()
    app_dir, app_mod = str(app.parent), app.stem
    logf = str(workdir / ("%s-requests.log" % name.replace("/", "-")))
    if name == "ruwsgi":
        argv = [RUWSGI, "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file", str(app),
                "--master", "--processes", "2", "--logto", logf]
        srv = Server(name, argv, port, workdir)
    elif name == "uwsgi":
        argv = [str(VENV_BIN / "uwsgi"), "--http-socket", "127.0.0.1:%d" % port, "--wsgi-file",
                str(app), "--master", "--processes", "2", "--logto", logf, "--die-on-term"]
        srv = Server(name, argv, port, workdir)
    elif name == "gunicorn":
        argv = [str(VENV_BIN / "gunicorn"), "-w", "2", "-b", "127.0.0.1:%d" % port,
                "--chdir", app_dir, "--access-logfile", logf, "%s:application" % app_mod]
        srv = Server(name, argv, port, workdir)
    elif name == "granian":
        argv = [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", "2",
                "--host", "127.0.0.1", "--port", str(port), "--working-dir", app_dir,
                "%s:application" % app_mod]
        srv = Server(name, argv, port, workdir)
    elif name == "bjoern":
        argv = [str(VENV_BIN / "python"), str(BENCH / "apps" / "bjoern_launch.py"), str(app),
                "127.0.0.1", str(port), "2"]
        srv = Server(name, argv, port, workdir)
    elif name.startswith("nginx+"):
        from helpers import Nginx
        upstream, _, transport = name[len("nginx+"):].partition("/")
        if transport == "unix":
            up = str(workdir / ("%s.sock" % upstream))
            if os.path.exists(up):
                os.unlink(up)
        else:
            up = "127.0.0.1:%d" % free_port()
        if upstream == "ruwsgi":
            argv = [RUWSGI, "--socket", up, "--wsgi-file", str(app),
                    "--master", "--processes", "2", "--logto", logf]
        else:
            argv = [str(VENV_BIN / "uwsgi"), "--socket", up, "--wsgi-file",
                    str(app), "--master", "--processes", "2", "--logto", logf, "--die-on-term"]
        srv = Server(name, argv, None, workdir)
        deadline = time.monotonic() + 30
        while True:
            try:
                if transport == "unix":
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(up)
                else:
                    host, port = up.rsplit(":", 1)
                    socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                if srv.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("%s did not start" % name)
                time.sleep(0.1)
        srv.front = Nginx(up, workdir / ("nginx-" + name.replace("/", "-")))
        srv.port = srv.front.port
    else:
        raise ValueError(name)
    srv.wait_ready(srv.port)
    return srv


def parse_duration(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)", s)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[u]


def run_wrk(port, app, args, lua):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % args.duration,
           "--latency"]
    if app == "echo":
        cmd += ["-s", lua]
    cmd.append("http://127.0.0.1:%d/" % port)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    out = proc.stdout

    def field(pattern):
        m = re.search(pattern, out)
        if not m:
            raise RuntimeError("wrk output lacks %r (exit %d): %s %s"
                               % (pattern, proc.returncode, out[-400:], proc.stderr[-400:]))
        return m.group(1)

    rps = float(field(r"Requests/sec:\s+([\d.]+)"))
    reqs = int(field(r"(\d+) requests in"))
    p99 = parse_duration(field(r"99%\s+(\S+)"))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": reqs, "p99_ms": p99,
            "non2xx": int(errs.group(1)) if errs else 0,
            "socket_errors": sock_errs.group(1) if sock_errs else ""}


def measure(name, app, args, workdir, lua):
    srv = start(name, APPS[app], workdir)
    try:
        warm = argparse.Namespace(**vars(args))
        warm.duration = 1
        run_wrk(srv.port, app, warm, lua)
        root = srv.proc.pid
        front = srv.front.proc.pid if srv.front else None
        c0 = tree_cpu_seconds(root)
        f0 = tree_cpu_seconds(front) if front else 0.0
        t0 = time.monotonic()
        r = run_wrk(srv.port, app, args, lua)
        elapsed = time.monotonic() - t0
        c1 = tree_cpu_seconds(root)
        r["cpu_us_per_req"] = (c1 - c0) * 1e6 / max(1, r["requests"])
        if front:
            # nginx's one worker: the share of one core it used while wrk ran.
            r["nginx_busy"] = (tree_cpu_seconds(front) - f0) / elapsed
        return r
    finally:
        srv.stop()


def available(name):
    if "ruwsgi" in name and not os.access(RUWSGI, os.X_OK):
        return "no %s" % RUWSGI
    if "nginx" in name and not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        return "nginx not installed"
    exe = {"uwsgi": "uwsgi", "nginx+uwsgi": "uwsgi", "nginx+uwsgi/unix": "uwsgi",
           "gunicorn": "gunicorn", "granian": "granian"}
    if name in exe and not (VENV_BIN / exe[name]).exists():
        return "%s not installed (bash scripts/setup.sh --bench)" % exe[name]
    if name == "bjoern":
        r = subprocess.run([str(VENV_BIN / "python"), "-c", "import bjoern"], capture_output=True)
        if r.returncode:
            return "bjoern not installed (bash scripts/setup.sh --bench)"
    return None


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def table(results, app, names, base):
    front = any("nginx_busy" in x for n in names for x in results.get((n, app), []))
    lines = ["### %s (%s)" % (app, "GET /" if app == "hello" else "POST 4 KiB, echoed"), "",
             "| server (2 processes) | req/s median (min to max) | p99 median | server CPU µs/req "
             "median (min to max) | %s req/s ÷ this | this CPU ÷ %s CPU |%s" % (
                 base, base, " nginx worker busy |" if front else ""),
             "|---|---:|---:|---:|---:|---:|%s" % ("---:|" if front else "")]
    b = results.get((base, app), [])
    b_rps, b_cpu = med([x["rps"] for x in b]), med([x["cpu_us_per_req"] for x in b])
    for n in names:
        rs = results.get((n, app), [])
        if not rs:
            continue
        rps = [x["rps"] for x in rs]
        cpu = [x["cpu_us_per_req"] for x in rs]
        lines.append("| %s | %s (%s to %s) | %.2f ms | %.2f (%.2f to %.2f) | %.2f | %.2f |" % (
            n, "{:,.0f}".format(med(rps)), "{:,.0f}".format(min(rps)), "{:,.0f}".format(max(rps)),
            med([x["p99_ms"] for x in rs]), med(cpu), min(cpu), max(cpu),
            b_rps / med(rps) if b else float("nan"), med(cpu) / b_cpu if b else float("nan"))
            + (" %.0f %% |" % (100 * med([x.get("nginx_busy", 0.0) for x in rs])) if front else ""))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--apps", default="hello,echo")
    ap.add_argument("--servers", default="ruwsgi,uwsgi,gunicorn,granian,bjoern,nginx+ruwsgi,"
                    "nginx+uwsgi,nginx+ruwsgi/unix,nginx+uwsgi/unix")
    ap.add_argument("--out", default=str(BENCH / "results"))
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not installed: bash scripts/setup.sh --bench")
    apps = args.apps.split(",")
    names = []
    for n in args.servers.split(","):
        why = available(n)
        if why:
            print("skipping %s: %s" % (n, why), file=sys.stderr)
        else:
            names.append(n)
    workdir = Path(tempfile.mkdtemp(prefix="ruwsgi-bench-"))
    lua = str(workdir / "post4k.lua")
    Path(lua).write_text('wrk.method = "POST"\nwrk.body = string.rep("x", 4096)\n'
                         'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    results = {}
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for app in apps:
            for n in order:
                try:
                    r = measure(n, app, args, workdir, lua)
                except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
                    print("round %d %s %s: FAILED %s" % (rnd + 1, app, n, e), file=sys.stderr)
                    continue
                results.setdefault((n, app), []).append(r)
                print("round %d %-6s %-17s %9.0f req/s  p99 %6.2f ms  %6.2f µs/req%s" % (
                    rnd + 1, app, n, r["rps"], r["p99_ms"], r["cpu_us_per_req"],
                    "  non2xx=%d" % r["non2xx"] if r["non2xx"] else ""), file=sys.stderr)

    direct = [n for n in names if not n.startswith("nginx+")]
    proxied = [n for n in names if n.startswith("nginx+") and not n.endswith("/unix")]
    proxied_unix = [n for n in names if n.startswith("nginx+") and n.endswith("/unix")]
    print("\nwrk -t%d -c%d -d%ds, %d interleaved rounds, medians; CPU = the app server's "
          "process tree only (nginx excluded)\n" % (args.threads, args.connections, args.duration,
                                                     args.rounds))
    for app in apps:
        print(table(results, app, direct, "ruwsgi"))
        print()
        if proxied:
            print(table(results, app, proxied, "nginx+ruwsgi"))
            print()
        if proxied_unix:
            print(table(results, app, proxied_unix, "nginx+ruwsgi/unix"))
            print()
    os.makedirs(args.out, exist_ok=True)
    out = Path(args.out) / ("bench-%d.json" % int(time.time()))
    out.write_text(json.dumps({"args": vars(args),
                               "results": {"%s|%s" % k: v for k, v in results.items()}}, indent=1))
    print("raw results: %s" % out, file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
