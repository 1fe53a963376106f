"""WSGI app with fault and introspection endpoints for ruwsgi's end-to-end tests.

Every endpoint is deterministic, so the same requests can be replayed against
wsgiref for comparison.
"""
import hashlib
import json
import os
import socket
import sys
import time
from urllib.parse import parse_qs

ENV_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI",
    "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT",
    "REMOTE_ADDR", "REMOTE_PORT", "HTTPS", "REMOTE_USER", "wsgi.url_scheme",
    "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.version",
)

_leak = []


def _qs(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _plain(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _jsonable(v):
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def _read_body(environ):
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return n, h.hexdigest()


def uwsgi_facts():
    try:
        import uwsgi  # provided by the server
    except ImportError:
        return {"present": False}
    facts = {"present": True, "pid": os.getpid()}
    facts["version_type"] = type(uwsgi.version).__name__
    facts["version"] = _jsonable(uwsgi.version)
    facts["opt"] = {str(k): _jsonable(v) for k, v in dict(uwsgi.opt).items()}
    facts["worker_id"] = uwsgi.worker_id()
    facts["masterpid"] = uwsgi.masterpid()
    facts["numproc"] = uwsgi.numproc
    facts["sockets"] = []
    for fd in uwsgi.sockets:
        # fromfd duplicates the fd: closing the copy leaves the server's socket alone.
        with socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM) as s:
            name = s.getsockname()
        if isinstance(name, tuple):
            name = "%s:%d" % name[:2]
        elif isinstance(name, bytes):
            name = name.decode("latin-1")
        facts["sockets"].append([fd, name])
    return facts


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = _qs(environ)

    if path == "/":
        return _plain(start_response, "OK")
    if path == "/pid":
        return _plain(start_response, str(os.getpid()))
    if path == "/sleep":
        time.sleep(float(q.get("s", "1")))
        return _plain(start_response, "slept %s" % q.get("s", "1"))
    if path == "/exit":
        sys.stderr.write("fault app: /exit called in pid %d\n" % os.getpid())
        sys.stderr.flush()
        os._exit(int(q.get("code", "1")))
    if path == "/len":
        n, digest = _read_body(environ)
        return _plain(start_response, "%d %s" % (n, digest))
    if path == "/echo":
        n = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(n)) if n.isdigit() else environ["wsgi.input"].read()
        ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
        return _plain(start_response, body, ctype=ctype)
    if path == "/big":
        mb = float(q.get("mb", "1"))
        total = int(mb * 1024 * 1024)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(total))])
        block = b"x" * 65536

        def gen():
            left = total
            while left > 0:
                n = min(left, len(block))
                yield block[:n]
                left -= n
        return gen()
    if path == "/chunks":
        n = int(q.get("n", "5"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (("chunk %d\n" % i).encode() for i in range(n))
    if path == "/leak":
        block = bytearray(int(float(q.get("mb", "10")) * 1024 * 1024))
        block[::4096] = b"x" * len(range(0, len(block), 4096))   # resident, not just mapped
        _leak.append(block)
        return _plain(start_response, "leaked %d" % len(_leak))
    if path == "/env" or path.startswith("/env/"):
        out = {k: _jsonable(environ.get(k)) for k in ENV_KEYS if k in environ}
        out["HTTP"] = {k: _jsonable(v) for k, v in environ.items() if k.startswith("HTTP_")}
        out["keys"] = sorted(k for k in environ if isinstance(k, str))
        return _plain(start_response, json.dumps(out, sort_keys=True), ctype="application/json")
    if path == "/osenv":
        return _plain(start_response, os.environ.get(q.get("k", ""), "<unset>"))
    if path == "/uwsgi":
        if "sleep" in q:
            time.sleep(float(q["sleep"]))
        return _plain(start_response, json.dumps(uwsgi_facts(), sort_keys=True), ctype="application/json")
    if path == "/badheader":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("X-Injected", "a\r\nSet-Cookie: evil=1")])
        return [b"should not be sent"]
    if path == "/badheadername":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad\r\nName", "v")])
        return [b"should not be sent"]
    if path == "/badstatus":
        start_response("200 OK\r\nSet-Cookie: evil=1", [("Content-Type", "text/plain")])
        return [b"should not be sent"]
    if path == "/nulheader":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Nul", "a\x00b")])
        return [b"should not be sent"]
    if path == "/error":
        raise RuntimeError("fault app: deliberate failure")
    return _plain(start_response, "not found: %s" % path, status="404 Not Found")
