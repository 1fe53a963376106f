"""Cache node and cache caller for the cache interop tests and the cache benchmark.

The same file is loaded by ruwsgi and by real uWSGI, so it only uses the `uwsgi` API both
offer. A *node* is just an instance with caches (`--cache2`) and a uwsgi-protocol socket;
a *caller* runs the cache functions on the test's behalf through its HTTP endpoint:

    GET /?op=get&key=K&cache=ID                  uwsgi.cache_get(K, ID)
    GET /?op=set&key=K&val=V&expires=E&cache=ID  uwsgi.cache_set(K, V, E, ID)
        &vlen=N instead of val: N pattern bytes (see pattern())
    GET /?op=update&...                          uwsgi.cache_update(...), same arguments
    GET /?op=del&key=K&cache=ID                  uwsgi.cache_del(K, ID)
    GET /?op=exists&key=K&cache=ID               uwsgi.cache_exists(K, ID)
    GET /?op=clear&cache=ID                      uwsgi.cache_clear(ID)
    GET /?op=inc&key=K&delta=D&cache=ID          uwsgi.cache_inc(K, D, 0, ID)
    GET /?op=bench&what=get|set|dict&n=N&keys=K&vlen=L&cache=ID
        N operations over K keys with L-byte values; JSON {"n", "elapsed", "hits"}
    anything else                                200 "cache node ready" (readiness probe)

`cache` absent means the argument is not passed at all (the local default cache).
Results come back as the response body; `X-Cache-Type` is the result's type name (`bytes`,
`bool`, `NoneType`, `int`) or `exception`, `X-Cache-Error` the exception, and
`X-Cache-Elapsed` the call's duration in seconds. Keys and values are decoded from the query
string as Latin-1, so `%00`..`%FF` give exact bytes.
"""
import json
import time
from urllib.parse import parse_qs

import uwsgi


def pattern(n):
    """n deterministic bytes covering every byte value (the tests compute the same)."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def _params(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, encoding="latin-1")


def _one(q, key, default=None):
    v = q.get(key)
    return v[-1] if v else default


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
        return _reply(start_response, b"", [("X-Cache-Type", "exception"),
                                            ("X-Cache-Error", msg),
                                            ("X-Cache-Elapsed", "%.3f" % (time.monotonic() - t0))])
    elapsed = time.monotonic() - t0
    body = res if isinstance(res, bytes) else repr(res).encode()
    return _reply(start_response, body, [("X-Cache-Type", type(res).__name__),
                                         ("X-Cache-Elapsed", "%.3f" % elapsed)])


def _bench(q):
    """Time N cache operations (or plain dict gets) from inside the worker."""
    what = _one(q, "what", "get")
    n = int(_one(q, "n", "10000"))
    nkeys = int(_one(q, "keys", "10000"))
    vlen = int(_one(q, "vlen", "64"))
    cache = _one(q, "cache")
    keys = [b"bench-key-%d" % i for i in range(nkeys)]
    value = pattern(vlen)
    hits = 0
    if what == "dict":
        d = {k: value for k in keys}
        t0 = time.perf_counter()
        for i in range(n):
            if d.get(keys[i % nkeys]) is not None:
                hits += 1
        elapsed = time.perf_counter() - t0
    elif what == "set":
        # The cache name is passed as such (not through *args), as applications write it.
        upd = uwsgi.cache_update
        t0 = time.perf_counter()
        if cache is None:
            for i in range(n):
                if upd(keys[i % nkeys], value):
                    hits += 1
        else:
            for i in range(n):
                if upd(keys[i % nkeys], value, 0, cache):
                    hits += 1
        elapsed = time.perf_counter() - t0
    else:
        get = uwsgi.cache_get
        t0 = time.perf_counter()
        if cache is None:
            for i in range(n):
                if get(keys[i % nkeys]) is not None:
                    hits += 1
        else:
            for i in range(n):
                if get(keys[i % nkeys], cache) is not None:
                    hits += 1
        elapsed = time.perf_counter() - t0
    return {"what": what, "n": n, "elapsed": elapsed, "hits": hits}


def application(environ, start_response):
    q = _params(environ)
    op = _one(q, "op")
    cache = _one(q, "cache")
    extra = () if cache is None else (cache,)
    key = (_one(q, "key") or "").encode("latin-1")
    if _one(q, "vlen") is not None and op != "bench":
        val = pattern(int(_one(q, "vlen")))
    else:
        val = (_one(q, "val") or "").encode("latin-1")
    expires = int(_one(q, "expires", "0"))
    if op == "get":
        return _call(start_response, lambda: uwsgi.cache_get(key, *extra))
    if op in ("set", "update"):
        fn = uwsgi.cache_set if op == "set" else uwsgi.cache_update
        return _call(start_response, lambda: fn(key, val, expires, *extra))
    if op == "del":
        return _call(start_response, lambda: uwsgi.cache_del(key, *extra))
    if op == "exists":
        return _call(start_response, lambda: uwsgi.cache_exists(key, *extra))
    if op == "clear":
        return _call(start_response, lambda: uwsgi.cache_clear(*extra))
    if op == "inc":
        delta = int(_one(q, "delta", "1"))
        return _call(start_response, lambda: uwsgi.cache_inc(key, delta, 0, *extra))
    if op == "bench":
        out = _bench(q)
        return _reply(start_response, json.dumps(out).encode(), ctype="application/json")
    return _reply(start_response, b"cache node ready", ctype="text/plain")
