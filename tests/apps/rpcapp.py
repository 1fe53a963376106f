"""RPC test app: registers functions at import time and checks the uwsgi RPC API.

GET /check      runs the API checks in this worker; "ok" or the failing assertion
GET /call?...   see application() below
"""
import os
import time
import traceback

import uwsgi


def hello(*args):
    return b"hello " + b" ".join(args)


def echo_args(*args):
    return b"|".join(args)


def big(n=b"100000"):
    return b"x" * int(n)


def whoami():
    return str(uwsgi.worker_id()).encode()


def slow_whoami():
    time.sleep(0.3)
    return str(uwsgi.worker_id()).encode()


def returns_str():
    return "not bytes"


def returns_none():
    return None


def raises():
    raise RuntimeError("rpc handler failure")


def nested():
    return b"nested:" + uwsgi.call(b"hello", b"n")


def raw_http():
    return b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nraw"


for name, f in [("hello", hello), ("echo_args", echo_args), ("big", big), ("whoami", whoami),
                ("slow_whoami", slow_whoami), ("returns_str", returns_str),
                ("returns_none", returns_none), ("raises", raises), ("nested", nested),
                ("raw_http", raw_http)]:
    assert uwsgi.register_rpc(name, f) is True

IMPORT_PID = os.getpid()
# A remote call made while the app is imported (in the master, before fork), so the master
# keeps a connection to that node: the workers must not share it.
IMPORT_CALL = None
if os.environ.get("RPC_IMPORT_NODE"):
    IMPORT_CALL = uwsgi.rpc(os.environ["RPC_IMPORT_NODE"], b"hello", b"import")


def expect_error(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc.__name__))


def checks(env):
    assert uwsgi.call(b"hello", b"a", b"b") == b"hello a b"
    assert uwsgi.rpc(None, b"hello", b"c") == b"hello c"
    assert uwsgi.call(b"echo_args", b"", b"x") == b"|x"   # local calls keep empty args
    assert uwsgi.call(b"nested") == b"nested:hello n"
    assert uwsgi.call(b"missing") is None
    assert uwsgi.call(b"returns_str") is None
    assert uwsgi.call(b"returns_none") is None
    assert uwsgi.call(b"raises") is None
    assert uwsgi.call(b"big", b"70000") == b"x" * 70000
    assert uwsgi.call(b"echo_args", *([b"a"] * 254)) == b"|".join([b"a"] * 254)
    expect_error(ValueError, uwsgi.call, b"echo_args", *([b"a"] * 255))
    # Python 3 types: names and arguments are bytes only
    expect_error(ValueError, uwsgi.call, "hello")
    expect_error(ValueError, uwsgi.call, b"hello", "str arg")
    expect_error(ValueError, uwsgi.call)
    expect_error(ValueError, uwsgi.rpc, None, "hello")
    expect_error(ValueError, uwsgi.rpc, None)
    expect_error(ValueError, uwsgi.rpc, 42, b"hello")
    # register_rpc: the name is a str, shorter than 256 bytes; the function is callable
    expect_error(TypeError, uwsgi.register_rpc, b"bytes_name", hello)
    expect_error(ValueError, uwsgi.register_rpc, "n" * 256, hello)
    expect_error(TypeError, uwsgi.register_rpc, "not_callable", 42)
    names = uwsgi.rpc_list()
    assert isinstance(names, tuple) and all(isinstance(n, bytes) for n in names), names
    assert names[:3] == (b"hello", b"echo_args", b"big"), names
    # the uwsgi socket of this very instance, as bytes and as str
    node = env.get("RPC_NODE")
    if node:
        assert uwsgi.rpc(node.encode("latin-1"), b"hello", b"r") == b"hello r"
        assert uwsgi.rpc(node, b"big") == b"x" * 100000
        assert uwsgi.rpc(node, b"missing") is None
    return b"ok"


def application(env, start_response):
    path = env["PATH_INFO"]
    qs = env.get("QUERY_STRING", "")
    try:
        if path == "/check":
            env = dict(env)
            if qs:
                env["RPC_NODE"] = qs
            body = checks(env)
        elif path == "/remote":
            # /remote?NODE&FUNCTION[&ARG...]
            node, func, *args = qs.split("&")
            t = time.monotonic()
            r = uwsgi.rpc(node, func.encode(), *[a.encode() for a in args])
            body = repr((r, round(time.monotonic() - t, 3))).encode()
        elif path == "/import-call":
            body = repr(IMPORT_CALL).encode()
        elif path == "/register":
            # /register?NAME: register NAME in this worker only
            uwsgi.register_rpc(qs, whoami)
            body = str(uwsgi.worker_id()).encode()
        elif path == "/list":
            time.sleep(float(qs or 0))
            body = repr((uwsgi.worker_id(), uwsgi.rpc_list())).encode()
        elif path == "/fill":
            # register until the table is full: how many fitted, then the error
            n = 0
            try:
                while True:
                    uwsgi.register_rpc("fill%d" % n, whoami)
                    n += 1
            except ValueError as e:
                body = ("%d %s" % (n, e)).encode()
        else:
            body = b"ok"
    except Exception:
        body = traceback.format_exc().encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
