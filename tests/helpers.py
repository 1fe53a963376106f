"""Process, socket and protocol helpers for ruwsgi's end-to-end tests.

Everything here talks to 127.0.0.1 or unix sockets only, and every wait is bounded.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
APPS = TESTS / "apps"
VENV = REPO / ".venv"
VENV_PY = VENV / "bin" / "python"

# RUWSGI_FLAVOR=uwsgi runs the fixtures against real uWSGI (pyuwsgi in .venv) to
# check the test helpers themselves; the suite proper targets ruwsgi.
FLAVOR = os.environ.get("RUWSGI_FLAVOR", "ruwsgi")
NAME = "uWSGI" if FLAVOR == "uwsgi" else "ruwsgi"   # as it appears in lifecycle log lines


def server_bin():
    if FLAVOR == "uwsgi":
        return os.environ.get("UWSGI_BIN", str(VENV / "bin" / "uwsgi"))
    return os.environ.get("RUWSGI_BIN", str(REPO / "target" / "release" / "ruwsgi"))


def uwsgi_bin():
    """Real uWSGI, for tests that run it next to ruwsgi: UWSGI_BIN, else pyuwsgi's `uwsgi`
    in .venv, else the one next to the Python running the tests (another checkout's venv)."""
    if os.environ.get("UWSGI_BIN"):
        return os.environ["UWSGI_BIN"]
    own = VENV / "bin" / "uwsgi"
    beside = Path(sys.executable).parent / "uwsgi"
    return str(own if own.exists() or not beside.exists() else beside)


def site_packages():
    found = sorted((VENV / "lib").glob("python3*/site-packages"))
    return str(found[0]) if found else None


LISTEN_RES = [
    # ruwsgi (and tests/apps/wsgiref_serve.py)
    re.compile(r"(?:ruwsgi|wsgiref): listening on (?P<addr>\S+) \((?P<kind>[\w-]+), fd (?P<fd>\d+)\)"),
    # uWSGI, for validating the helpers against it
    re.compile(r"uwsgi socket (?P<idx>\d+) bound to (?:TCP|UNIX) address (?P<addr>\S+?)"
               r"(?: \(port auto-assigned\))? fd (?P<fd>\d+)"),
]

SOCKET_OPTS = {
    "--http-socket": "http-socket", "--http11-socket": "http-socket",
    "--socket": "socket", "--uwsgi-socket": "socket", "-s": "socket",
}

DEADLINE_MSG = "timed out after %.1fs waiting for %s"


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = data.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def children_of(pid):
    """Live child pids of pid (from /proc, like `ps --ppid`)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        rest = data.rsplit(")", 1)[1].split()
        if int(rest[1]) == pid and rest[0] not in ("Z", "X"):
            out.append(int(d))
    return sorted(out)


def ps_ppid(pid):
    """`ps --ppid <pid>` as a list of pids (empty list when there are none)."""
    r = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True,
                       timeout=10)
    return [int(x) for x in r.stdout.split()]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(DEADLINE_MSG % (timeout, what))
        time.sleep(interval)


def recs(out, tag):
    """The JSON records (one per line) a test app appended to the file `out/tag`."""
    p = Path(out) / tag
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def wait_recs(out, tag, n, timeout=10.0):
    """The records in `out/tag` once there are at least `n`."""
    return wait_until(lambda: (lambda r: r if len(r) >= n else None)(recs(out, tag)), timeout,
                      what="%d record(s) in %r (have %d)" % (n, tag, len(recs(out, tag))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_listening(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- raw HTTP

def connect(addr, timeout=5.0):
    """addr: (host, port) tuple, 'host:port' or a unix socket path."""
    if isinstance(addr, str) and ":" in addr and not addr.startswith("/"):
        host, port = addr.rsplit(":", 1)
        addr = (host, int(port))
    if isinstance(addr, tuple):
        s = socket.create_connection(addr, timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(str(addr))
    return s


class RawResult:
    def __init__(self, data, closed, error=None):
        self.data = data
        self.closed = closed      # the peer closed (EOF or reset) within the time allowed
        self.error = error

    @property
    def status(self):
        m = re.match(rb"HTTP/1\.[01] (\d{3})", self.data)
        return int(m.group(1)) if m else None

    @property
    def statuses(self):
        """Status codes of the responses in `data`, walked by their framing
        (Content-Length, chunked, or to the end), so a body that ends right before the
        next status line is not mistaken for part of it."""
        out, pos, data = [], 0, self.data
        while pos < len(data):
            m = re.match(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n", data[pos:])
            if not m:
                break
            code = int(m.group(1))
            out.append(code)
            end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                break
            head = data[pos:end].lower()
            pos = end + 4
            if code < 200 or code in (204, 304):
                continue
            cl = re.search(rb"\r\ncontent-length: *(\d+)", head)
            if cl:
                pos += int(cl.group(1))
            elif re.search(rb"\r\ntransfer-encoding: *chunked", head):
                while True:
                    nl = data.find(b"\r\n", pos)
                    if nl < 0:
                        return out
                    size = int(data[pos:nl].split(b";")[0] or b"0", 16)
                    pos = nl + 2 + size + 2
                    if size == 0:
                        break
            else:
                break
        return out

    @property
    def head(self):
        return self.data.split(b"\r\n\r\n", 1)[0]

    @property
    def body(self):
        parts = self.data.split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) > 1 else b""

    def header(self, name):
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower().encode():
                return v.strip()
        return None

    def __repr__(self):
        return "RawResult(closed=%r, error=%r, data=%r)" % (self.closed, self.error, self.data[:600])


def raw_exchange(addr, data, timeout=5.0, shutdown_write=False, chunks=None, pause=0.0):
    """Send bytes, read until the peer closes or `timeout` passes. Returns RawResult."""
    s = connect(addr, timeout=timeout)
    buf = b""
    closed = False
    err = None
    deadline = time.monotonic() + timeout
    try:
        for piece in (chunks if chunks is not None else [data]):
            try:
                s.sendall(piece)
            except OSError as e:   # the server may close early after a rejection
                err = e
                break
            if pause:
                time.sleep(pause)
        if shutdown_write:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                got = s.recv(65536)
            except socket.timeout:
                break
            except OSError as e:   # ECONNRESET counts as closed
                err = err or e
                closed = True
                break
            if not got:
                closed = True
                break
            buf += got
    finally:
        s.close()
    return RawResult(buf, closed, err)


def http_request(addr, method="GET", path="/", headers=None, body=b"", version="HTTP/1.1",
                 timeout=5.0, close=True):
    h = {"Host": "localhost"}
    h.update(headers or {})
    if body and "Content-Length" not in h and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    if close:
        h.setdefault("Connection", "close")
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return raw_exchange(addr, head.encode("latin-1") + body, timeout=timeout)


def read_response(sock, timeout=5.0):
    """Read one HTTP/1.x response from a keep-alive socket.

    Returns (status, headers dict (lower-case names), body, bytes_received). Raises
    ConnectionError if the peer closes before a complete response.
    """
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        if not got:
            raise ConnectionError("closed after %d bytes of response head" % len(buf))
        buf += got
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    received = len(buf)
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            got = sock.recv(65536)
            if not got:
                raise ConnectionError("closed mid-body")
            rest += got
            received += len(got)
        return status, headers, rest[:n], received
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                got = sock.recv(65536)
                if not got:
                    raise ConnectionError("closed mid-chunk")
                rest += got
                received += len(got)
            line, rest = rest.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(rest) < size + 2:
                got = sock.recv(65536)
                if not got:
                    raise ConnectionError("closed mid-chunk")
                rest += got
                received += len(got)
            if size == 0:
                # skip trailers (none expected): rest starts with CRLF
                return status, headers, body, received
            body += rest[:size]
            rest = rest[size + 2:]
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", received
    # read until close
    while True:
        got = sock.recv(65536)
        if not got:
            return status, headers, rest, received
        rest += got
        received += len(got)


# --------------------------------------------------------------------------- uwsgi protocol

def uwsgi_vars(pairs):
    out = b""
    for k, v in pairs:
        k = k.encode("latin-1") if isinstance(k, str) else k
        v = v.encode("latin-1") if isinstance(v, str) else v
        out += struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
    return out


def uwsgi_packet(pairs, modifier1=0, modifier2=0, datasize=None):
    data = uwsgi_vars(pairs)
    size = len(data) if datasize is None else datasize
    return struct.pack("<BHB", modifier1, size, modifier2) + data


def uwsgi_request_vars(path="/", method="GET", query="", body=b"", remote_addr="127.0.0.1",
                       extra=()):
    pairs = [
        ("REQUEST_METHOD", method), ("REQUEST_URI", path + ("?" + query if query else "")),
        ("PATH_INFO", path), ("QUERY_STRING", query), ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"), ("SERVER_PORT", "80"), ("HTTP_HOST", "localhost"),
        ("REMOTE_ADDR", remote_addr), ("REMOTE_PORT", "5555"),
        ("CONTENT_LENGTH", str(len(body)) if body else ""),
    ]
    return pairs + list(extra)


def uwsgi_exchange(addr, path="/", body=b"", timeout=5.0, **kw):
    pkt = uwsgi_packet(uwsgi_request_vars(path=path, body=body, **kw))
    return raw_exchange(addr, pkt + body, timeout=timeout)


def uwsgi_array(items):
    """A uwsgi array (RPC requests): each item as [u16 LE length][bytes]."""
    out = b""
    for it in items:
        it = it.encode("latin-1") if isinstance(it, str) else it
        out += struct.pack("<H", len(it)) + it
    return out


def rpc_packet(name, *args, modifier2=0):
    """A modifier1 173 (RPC) request calling `name(*args)`."""
    body = uwsgi_array((name,) + args)
    return struct.pack("<BHB", 173, len(body), modifier2) + body


def rpc_exchange(addr, name, *args, modifier2=0, timeout=5.0):
    """Send one RPC request and read until the peer closes (RawResult)."""
    return raw_exchange(addr, rpc_packet(name, *args, modifier2=modifier2), timeout=timeout)


# --------------------------------------------------------------------------- server process

class Listener:
    def __init__(self, addr, kind, fd):
        self.addr = addr
        self.kind = kind
        self.fd = fd

    @property
    def is_unix(self):
        return self.addr.startswith("/") or self.addr.startswith("@")

    @property
    def host(self):
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    @property
    def target(self):
        return self.addr if self.is_unix else (self.host or "127.0.0.1", self.port)

    def __repr__(self):
        return "Listener(%s, %s, fd %s)" % (self.addr, self.kind, self.fd)


def expected_socket_kinds(args):
    kinds = []
    it = iter(args)
    for a in it:
        name, eq, _ = a.partition("=")
        if name in SOCKET_OPTS:
            kinds.append(SOCKET_OPTS[name])
            if not eq:
                next(it, None)
    return kinds


class ServerProcess:
    """A server (ruwsgi by default) started as a subprocess in its own session."""

    def __init__(self, args, workdir, bin=None, env=None, cwd=None, n_sockets=None, name="server"):
        self.args = [str(a) for a in args]
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bin = bin or server_bin()
        self.log_path = self.workdir / ("%s.log" % name)
        self.kinds = expected_socket_kinds(self.args)
        self.n_sockets = n_sockets if n_sockets is not None else max(1, len(self.kinds))
        self.listeners = []
        self.seen_pids = set()
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("UWSGI_") or k.startswith("RUWSGI_"):
                del e[k]
        e.setdefault("PYTHONUNBUFFERED", "1")
        e.update(env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.bin] + self.args, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, cwd=str(cwd or self.workdir), env=e,
            start_new_session=True)
        self.pid = self.proc.pid
        self.pgid = self.pid

    # -- logs
    def log_text(self):
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=80):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, regex, timeout=10.0, count=1, start=0):
        """Wait until `regex` matched `count` times in the log (from char offset `start`).
        Returns the list of matches."""
        rx = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            ms = list(rx.finditer(self.log_text(), start))
            if len(ms) >= count:
                return ms
            if time.monotonic() >= deadline:
                raise AssertionError("%s: no %d× /%s/ in the log within %.1fs; log tail:\n%s"
                                     % (self.bin, count, regex, timeout, self.log_tail()))
            time.sleep(0.05)

    def log_len(self):
        return len(self.log_text())

    # -- readiness
    def wait_listening(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            found = []
            for rx in LISTEN_RES:
                for m in rx.finditer(text):
                    d = m.groupdict()
                    kind = d.get("kind")
                    if kind is None:   # uWSGI: map "socket N" to the Nth socket option
                        idx = int(d["idx"])
                        kind = self.kinds[idx] if idx < len(self.kinds) else "unknown"
                    found.append(Listener(d["addr"], kind, int(d["fd"])))
            if len(found) >= self.n_sockets:
                self.listeners = found
                return found
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s before listening; args=%r; log:\n%s"
                                     % (self.bin, self.proc.returncode, self.args, self.log_tail()))
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError("%s: no 'listening on' line for %d socket(s) within %.0fs; log:\n%s"
                                     % (self.bin, self.n_sockets, timeout, self.log_tail()))
            time.sleep(0.05)

    def probe(self, listener, path="/", timeout=2.0):
        """True once the listener answers a request with any complete status line."""
        try:
            if listener.kind == "socket":
                r = uwsgi_exchange(listener.target, path=path, timeout=timeout)
            else:
                r = http_request(listener.target, path=path, timeout=timeout)
        except OSError:
            return False
        return r.status is not None

    def wait_ready(self, timeout=20.0, path="/"):
        self.wait_listening(timeout)
        deadline = time.monotonic() + timeout
        for lst in self.listeners:
            while not self.probe(lst, path):
                if self.proc.poll() is not None:
                    raise AssertionError("%s exited with %s; log:\n%s"
                                         % (self.bin, self.proc.returncode, self.log_tail()))
                if time.monotonic() >= deadline:
                    raise AssertionError("%s never answered on %r within %.0fs; log:\n%s"
                                         % (self.bin, lst, timeout, self.log_tail()))
                time.sleep(0.05)
        return self

    # -- addresses
    def listener(self, kind=None):
        for lst in self.listeners:
            if kind is None or lst.kind == kind:
                return lst
        raise AssertionError("no %s listener among %r" % (kind, self.listeners))

    @property
    def http(self):
        return self.listener("http-socket")

    @property
    def uwsgi(self):
        return self.listener("socket")

    @property
    def port(self):
        lst = self.http if any(x.kind == "http-socket" for x in self.listeners) else self.listeners[0]
        return lst.port

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- processes
    def children(self):
        kids = children_of(self.pid)
        self.seen_pids.update(kids)
        return kids

    def wait_children(self, n, timeout=15.0):
        return wait_until(lambda: (lambda k: k if len(k) >= n else None)(self.children()),
                          timeout, what="%d children of %d" % (n, self.pid))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=15.0):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s (pid %d) did not exit within %.0fs; log:\n%s"
                                 % (self.bin, self.pid, timeout, self.log_tail()))

    def stop(self, sig=None, timeout=10.0, check_orphans=True):
        """Stop with `sig` (SIGINT), SIGKILL after `timeout`; assert no child process is left."""
        sig = sig or signal.SIGINT
        if self.proc.poll() is None:
            self.children()
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("%s did not stop on signal %s within %.0fs; log:\n%s"
                                     % (self.bin, sig, timeout, self.log_tail()))
        if check_orphans:
            self.assert_no_orphans()
        return self.proc.returncode

    def assert_no_orphans(self, timeout=3.0):
        left = []
        deadline = time.monotonic() + timeout
        while True:
            left = [p for p in self.seen_pids | set(children_of(self.pid)) if pid_alive(p)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not left, "processes left after %s stopped: %r; log:\n%s" % (
            self.bin, left, self.log_tail())
        assert ps_ppid(self.pid) == [], "ps --ppid %d not empty" % self.pid

    def kill(self):
        pids = set(self.seen_pids)
        try:
            pids.update(children_of(self.pid))
        except OSError:
            pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def start_uwsgi(args, workdir, name="uwsgi", n_sockets=None, timeout=30.0, ready=True,
                ready_path="/", env=None):
    """Start real uWSGI (uwsgi_bin()) with `args` as a ServerProcess and, unless ready=False,
    wait until every socket answers a request. `--die-on-term` is added so SIGTERM stops it
    (uWSGI 2.0 reloads on SIGTERM otherwise). Callers stop it with .stop() or .kill()."""
    b = uwsgi_bin()
    if not os.path.exists(b):
        raise AssertionError("real uWSGI not found at %s: run `bash scripts/setup.sh` "
                             "(or set UWSGI_BIN)" % b)
    srv = ServerProcess(["--die-on-term"] + [str(a) for a in args], workdir, bin=b, env=env,
                        n_sockets=n_sockets, name=name)
    if ready:
        try:
            srv.wait_ready(timeout=timeout, path=ready_path)
        except BaseException:
            srv.kill()
            raise
    return srv


def run_binary(args, timeout=30, cwd=None, env=None):
    """Run the server binary to completion (for --help, --version, config errors)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("UWSGI_"):
            del e[k]
    e.update(env or {})
    return subprocess.run([server_bin()] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=e, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- nginx

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 128m;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""

# The default: everything goes to the upstream as ordinary requests.
NGINX_DEFAULT_LOCATIONS = """\
        location / {
            include {params};
            uwsgi_pass {upstream};
            uwsgi_read_timeout 30s;
        }
"""


def nginx_bin():
    for p in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.path.exists(p):
            return p
    return None


class Nginx:
    def __init__(self, upstream, workdir, locations=None):
        """upstream: '127.0.0.1:PORT' or a unix socket path.

        locations: None for the default `location /` that passes every request to the
        upstream, or nginx `location` blocks to use instead (NGINX_DEFAULT_LOCATIONS can be
        part of them). In that text `{upstream}` becomes the upstream as `uwsgi_pass` wants
        it and `{params}` the path of nginx's uwsgi_params file; nothing else is touched, so
        the blocks keep their own braces as written."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not upstream.startswith("unix:") and upstream.startswith("/"):
            upstream = "unix:" + upstream
        self.port = free_port()
        params = "/etc/nginx/uwsgi_params"
        locs = NGINX_DEFAULT_LOCATIONS if locations is None else locations
        locs = locs.replace("{upstream}", upstream).replace("{params}", params)
        conf = NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "",
            d=self.dir, port=self.port, locations=locs.rstrip("\n"))
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(conf)
        self._log = open(self.dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [nginx_bin(), "-p", str(self.dir), "-e", str(self.dir / "error.log"),
             "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while not port_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("nginx did not start: %s\n%s" % (
                    (self.dir / "stderr.log").read_text(errors="replace"),
                    (self.dir / "error.log").read_text(errors="replace")
                    if (self.dir / "error.log").exists() else ""))
            time.sleep(0.05)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def error_log(self):
        p = self.dir / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()


def local_non_loopback_ip():
    """An IPv4 address of this host that is not loopback (a route lookup, nothing sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.123", 9))
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


# --------------------------------------------------------------------------- interop fleets

# Caller->node pairs of the interop tests, and their test ids.
PAIRS = [("ruwsgi", "uwsgi"), ("uwsgi", "ruwsgi"), ("uwsgi", "uwsgi"), ("ruwsgi", "ruwsgi")]
PAIR_IDS = ["%s->%s" % p for p in PAIRS]


def pattern(n):
    """`n` bytes cycling through 0..255: the payloads the interop apps build
    (tests/apps/rpc_node.py, tests/apps/cache_node.py)."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


# Log marks of a process that died: a fleet's per-test check fails on any of them.
DEATH_MARKS = ("DAMN !", "Segmentation Fault", "panicked at")


class Fleet:
    """ruwsgi and real uWSGI servers of one test module, all loading `app`, each started on
    first use and killed at the end: a *node* of each kind (uwsgi sockets over TCP and unix,
    plus HTTP, 2 workers, `node_extra` options) and a *caller* of each kind (HTTP only, 1
    worker, `--socket-timeout socket_timeout`, `caller_extra` options)."""

    def __init__(self, tmp, app, socket_timeout, node_extra=(), caller_extra=()):
        from conftest import Factory
        self.tmp = Path(tmp)
        self.app = app
        self.socket_timeout = socket_timeout
        self.node_extra = list(node_extra)
        self.caller_extra = list(caller_extra)
        self.factory = Factory(self.tmp)
        self.others = []
        self.cache = {}

    def start(self, kind, args, name, **kw):
        args = [str(a) for a in args]
        if kind == "ruwsgi":
            return self.factory(*args, name=name, **kw)
        srv = start_uwsgi(args, self.tmp / name, name=name, **kw)
        self.others.append(srv)
        return srv

    def node_args(self, name, extra=()):
        return ["--master", "--processes", "2", "--socket", "127.0.0.1:0",
                "--socket", self.tmp / name / "node.sock", "--http-socket", "127.0.0.1:0",
                "--wsgi-file", self.app] + self.node_extra + list(extra)

    def cached(self, key, make):
        """The server `make()` started under `key` (a server that failed to start fails
        every test that asks for it, without being started again)."""
        if key not in self.cache:
            try:
                self.cache[key] = make()
            except BaseException as e:   # don't try to start a broken server for every test
                self.cache[key] = e
        got = self.cache[key]
        if isinstance(got, BaseException):
            import pytest
            pytest.fail("%s could not be started: %s" % (key, got), pytrace=False)
        return got

    def node(self, kind):
        name = "%s-node" % kind
        return self.cached(name, lambda: self.start(kind, self.node_args(name), name))

    def caller(self, kind):
        name = "%s-caller" % kind
        args = ["--master", "--processes", "1", "--http-socket", "127.0.0.1:0",
                "--socket-timeout", self.socket_timeout, "--wsgi-file", self.app]
        return self.cached(name, lambda: self.start(kind, args + self.caller_extra, name))

    def all(self):
        return [s for s in self.cache.values() if not isinstance(s, BaseException)]

    def close(self):
        self.factory.cleanup()
        for srv in self.others:
            srv.kill()

    def guard(self):
        """A generator fixture body: yields the fleet, then fails if a process of any of its
        servers died meanwhile."""
        before = {id(s): s.log_len() for s in self.all()}
        yield self
        for srv in self.all():
            new = srv.log_text()[before.get(id(srv), 0):]
            for mark in DEATH_MARKS:
                assert mark not in new, "%s: a process died during the test:\n%s" % (
                    srv.bin, srv.log_tail())


def tcp_addr(srv):
    """`127.0.0.1:PORT` of a server's TCP uwsgi socket."""
    lst = [x for x in srv.listeners if x.kind == "socket" and not x.is_unix][0]
    return "127.0.0.1:%d" % lst.port


def unix_addr(srv):
    """The path of a server's unix uwsgi socket."""
    return [x for x in srv.listeners if x.kind == "socket" and x.is_unix][0].addr
