"""RPC benchmark app for bench/rpc_bench.py, loaded unchanged by ruwsgi and by uWSGI.

It registers `ping` (returns its first argument) and `big` (returns 100,000 bytes, so the
reply takes the modifier2 5 form). Its HTTP endpoint times a loop of calls:

    GET /?mode=call&n=N&fn=ping                    N × uwsgi.call(fn, ARG)
    GET /?mode=rpc&n=N&fn=ping&node=ADDR           N × uwsgi.rpc(ADDR, fn, ARG)

and answers JSON {"n": N, "elapsed": seconds, "failed": calls that returned None,
"last_ok": whether the last result was the expected one}. Any other request gets "ready".
"""
import json
import time
from urllib.parse import parse_qs

import uwsgi

ARG = b"0123456789abcdef"
BIG = bytes(range(256)) * 390 + bytes(160)       # 100,000 bytes


def ping(*args):
    return args[0] if args else b"pong"


def big(*_):
    return BIG


EXPECT = {b"ping": ARG, b"big": BIG}

uwsgi.register_rpc("ping", ping)
uwsgi.register_rpc("big", big)


def application(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    mode = q.get("mode", [""])[0]
    if mode not in ("call", "rpc"):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"ready"]
    n = int(q.get("n", ["1000"])[0])
    fn = q.get("fn", ["ping"])[0].encode()
    node = q.get("node", [None])[0]
    failed = 0
    res = None
    call, rpc = uwsgi.call, uwsgi.rpc
    t0 = time.perf_counter()
    if mode == "call":
        for _ in range(n):
            res = call(fn, ARG)
            if res is None:
                failed += 1
    else:
        for _ in range(n):
            res = rpc(node, fn, ARG)
            if res is None:
                failed += 1
    elapsed = time.perf_counter() - t0
    body = json.dumps({"n": n, "elapsed": elapsed, "failed": failed,
                       "last_ok": res == EXPECT.get(fn)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
