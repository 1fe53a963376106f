"""RPC node and RPC caller for the RPC interop and nginx tests.

The same file is loaded by ruwsgi and by real uWSGI, so it only uses the `uwsgi` API both
offer. At import it registers the functions in FUNCS (apps load before the fork, so every
worker has them). Its HTTP endpoint makes RPC calls on the test's behalf and reports what
the call returned:

    GET /?op=rpc&node=ADDR&fn=NAME&a=ARG&a=ARG   uwsgi.rpc(ADDR, NAME, *ARGS)
        node absent: None (a local call); &nodetype=bytes passes ADDR as bytes;
        &alen=N appends one more argument of N pattern bytes; &nargs=K appends K arguments
        b"0", b"1", ...; &empty=1 appends an empty argument (b"").
    GET /?op=call&fn=NAME&a=ARG                  uwsgi.call(NAME, *ARGS)
    GET /?op=seq&node=ADDR&n=200&tag=T           n calls of hello(T + str(i)) in a row; JSON
                                                 {"ok": count of right answers, "bad": [...]}
    GET /?op=list                                uwsgi.rpc_list(), JSON of the names
    anything else                                200 "rpc node ready" (readiness probe)

Results come back as the response body; headers say what the call returned:
`X-Rpc-Type` is the result's type name (`bytes`, `NoneType`) or `exception`, `X-Rpc-Error`
the exception when one was raised, `X-Rpc-Elapsed` the call's duration in seconds.
Arguments are decoded from the query string as Latin-1, so `%00`..`%FF` give exact bytes.
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi


def pattern(n):
    """n deterministic bytes covering every byte value (the tests compute the same)."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def hello(*args):
    return b"hello " + b" ".join(args)


def echo_args(*args):
    return b"%d:" % len(args) + b"|".join(args)


def big(size=b"100000", *_):
    return pattern(int(size))


def nothing(*_):
    return b""


def text(*_):
    return "a str is not an RPC result"


def none(*_):
    return None


def boom(*_):
    raise RuntimeError("boom (raised on purpose by the rpc_node app)")


def pid(*_):
    return b"%d" % os.getpid()


def raw_http(*args):
    """A whole HTTP response, for nginx `uwsgi_modifier2 1` (raw) locations."""
    body = b"raw:" + b",".join(args)
    return (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Rpc-Raw: yes\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


FUNCS = {
    "hello": hello, "echo_args": echo_args, "big": big, "nothing": nothing, "text": text,
    "none": none, "boom": boom, "pid": pid, "raw_http": raw_http,
}

REGISTERED = {}
for _name, _func in FUNCS.items():
    REGISTERED[_name] = uwsgi.register_rpc(_name, _func)


def _params(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, encoding="latin-1")


def _one(q, key, default=None):
    v = q.get(key)
    return v[-1] if v else default


def _node(q):
    node = _one(q, "node")
    if node is not None and _one(q, "nodetype") == "bytes":
        node = node.encode("latin-1")
    return node


def _args(q):
    args = [a.encode("latin-1") for a in q.get("a", [])]
    if _one(q, "alen"):
        args.append(pattern(int(_one(q, "alen"))))
    if _one(q, "nargs"):
        args.extend(b"%d" % i for i in range(int(_one(q, "nargs"))))
    if _one(q, "empty"):
        args.append(b"")
    return args


def _reply(start_response, body, headers=(), ctype="application/octet-stream"):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))]
                   + list(headers))
    return [body]


def _call(start_response, fn):
    t0 = time.monotonic()
    try:
        res = fn()
    except Exception as e:  # reported to the test, which decides what was expected
        msg = ("%s: %s" % (type(e).__name__, e)).replace("\r", " ").replace("\n", " ")
        return _reply(start_response, b"", [("X-Rpc-Type", "exception"), ("X-Rpc-Error", msg),
                                            ("X-Rpc-Elapsed", "%.3f" % (time.monotonic() - t0))])
    elapsed = time.monotonic() - t0
    body = res if isinstance(res, bytes) else repr(res).encode()
    return _reply(start_response, body, [("X-Rpc-Type", type(res).__name__),
                                         ("X-Rpc-Elapsed", "%.3f" % elapsed)])


def application(environ, start_response):
    q = _params(environ)
    op = _one(q, "op")
    fn = (_one(q, "fn") or "").encode("latin-1")
    if op == "rpc":
        node, args = _node(q), _args(q)
        return _call(start_response, lambda: uwsgi.rpc(node, fn, *args))
    if op == "call":
        args = _args(q)
        return _call(start_response, lambda: uwsgi.call(fn, *args))
    if op == "seq":
        node, n = _node(q), int(_one(q, "n", "200"))
        tag = (_one(q, "tag") or "").encode("latin-1")
        ok, bad = 0, []
        t0 = time.monotonic()
        for i in range(n):
            arg = tag + b"%d" % i
            got = uwsgi.rpc(node, b"hello", arg)
            if got == b"hello " + arg:
                ok += 1
            elif len(bad) < 10:
                bad.append([i, repr(got)])
        out = {"ok": ok, "n": n, "bad": bad, "elapsed": time.monotonic() - t0}
        return _reply(start_response, json.dumps(out).encode(), ctype="application/json")
    if op == "list":
        names = uwsgi.rpc_list()
        out = {"type": type(names).__name__,
               "names": [x.decode("latin-1") if isinstance(x, bytes) else repr(x) for x in names],
               "item_types": sorted({type(x).__name__ for x in names}),
               "registered": {k: repr(v) for k, v in REGISTERED.items()}}
        return _reply(start_response, json.dumps(out).encode(), ctype="application/json")
    return _reply(start_response, b"rpc node ready", ctype="text/plain")
