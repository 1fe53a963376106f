"""Local cache test app (caches configured by the test)."""
import json
import os
import random
import time
import traceback

import uwsgi


def expect(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc.__name__))


def checks():
    c = "main"
    assert uwsgi.cache_clear(c) is True
    assert uwsgi.cache_get("k", c) is None
    assert uwsgi.cache_set("k", b"v1", 0, c) is True
    assert uwsgi.cache_set("k", b"v2", 0, c) is None          # set never overwrites
    assert uwsgi.cache_get("k", c) == b"v1"
    assert uwsgi.cache_get(b"k", c) == b"v1"                  # str and bytes keys agree
    assert uwsgi.cache_update("k", "v3", 0, c) is True       # str value stored as UTF-8
    assert uwsgi.cache_get("k", c) == b"v3"
    assert uwsgi.cache_exists("k", c) is True
    assert uwsgi.cache_exists("nope", c) is None
    assert uwsgi.cache_del("k", c) is True
    assert uwsgi.cache_del("k", c) is None
    assert uwsgi.cache_set("e", b"", 0, c) is None             # empty values are refused
    assert uwsgi.cache_set("big", b"x" * 129, 0, c) is None    # blocksize 128
    assert uwsgi.cache_set("big", b"x" * 128, 0, c) is True
    assert uwsgi.cache_set("k" * 65, b"v", 0, c) is None       # keysize 64
    # the default cache is the first one configured
    assert uwsgi.cache_set("d", b"default") is True
    assert uwsgi.cache_get("d", c) == b"default"
    assert uwsgi.cache_get("d", "other") is None
    assert uwsgi.cache_get("d", "missing") is None
    assert uwsgi.cache_set("d", b"x", 0, "missing") is None
    # math
    assert uwsgi.cache_inc("n", 1, 0, c) is True
    assert uwsgi.cache_num("n", c) == 1
    assert uwsgi.cache_inc("n", 10, 0, c) is True
    assert uwsgi.cache_dec("n", 2, 0, c) is True
    assert uwsgi.cache_mul("n", 3, 0, c) is True
    assert uwsgi.cache_div("n", 2, 0, c) is True
    assert uwsgi.cache_num("n", c) == 13
    assert uwsgi.cache_get("n", c) == (13).to_bytes(8, "little")
    assert uwsgi.cache_inc("n") is True and uwsgi.cache_num("n") == 14
    assert uwsgi.cache_num("big", c) == 0                       # not 8 bytes
    assert uwsgi.cache_div("n", 0, 0, c) is True and uwsgi.cache_num("n", c) == 0
    assert uwsgi.cache_inc("m", 1, 0, "other") is True          # math_initial=100
    assert uwsgi.cache_num("m", "other") == 101
    keys = uwsgi.cache_keys(c)
    assert isinstance(keys, list) and sorted(keys) == [b"big", b"d", b"n"], keys
    assert expect(ValueError, uwsgi.cache_keys, "missing") == "no local uWSGI cache available"
    expect(TypeError, uwsgi.cache_get, 42)
    assert uwsgi.cache_clear("missing") is None
    # names resolve by value whatever the object: many distinct objects of equal strings,
    # more names than a thread remembers, names of the wrong type in between
    names = ["".join(["ma", "in"]) for _ in range(20)] + ["other", "lru", "stress"] * 4
    for i, name in enumerate(names):
        assert uwsgi.cache_update("memo", b"%d" % i, 0, name) is True, name
        assert uwsgi.cache_get("memo", name) == b"%d" % i, name
        expect(TypeError, uwsgi.cache_get, "memo", i)
    assert [uwsgi.cache_get("memo", n) for n in ("main", "other", "lru", "stress")] == [
        b"19", b"29", b"30", b"31"]
    assert uwsgi.cache_get("memo", "".join(["miss", "ing"])) is None
    assert uwsgi.cache_get("memo") == b"19"                      # None: the default cache
    # bytes keys with a name already looked up take the short path: same results as the
    # general one (str keys, keywords, other types)
    assert uwsgi.cache_get(b"memo", "main") == b"19"
    assert uwsgi.cache_get(b"memo", None) == b"19"
    assert uwsgi.cache_get(b"memo", cache="main") == b"19"
    assert uwsgi.cache_get(key=b"memo") == b"19"
    assert uwsgi.cache_get(type("K", (bytes,), {})(b"memo"), "main") == b"19"
    assert uwsgi.cache_get(b"absent", "main") is None
    assert uwsgi.cache_get(b"", "main") is None
    assert uwsgi.cache_get(b"k" * 65, "main") is None            # keysize 64
    assert uwsgi.cache_set(b"sp", b"1", 0, "main") is True
    assert uwsgi.cache_set(b"sp", b"2", 0, "main") is None        # set never overwrites
    assert uwsgi.cache_update(b"sp", b"3", 0, "main") is True
    assert uwsgi.cache_update(b"sp", b"4") is True and uwsgi.cache_get(b"sp") == b"4"
    assert uwsgi.cache_update(b"sp", b"5", 100) is True and uwsgi.cache_get(b"sp") == b"5"
    assert uwsgi.cache_update(b"sp", b"6", expires=0, cache="main") is True
    expect(TypeError, uwsgi.cache_update, b"sp", bytearray(b"7"), 0, "main")
    assert uwsgi.cache_update(b"sp", b"", 0, "main") is None       # empty values are refused
    assert uwsgi.cache_update(b"sp", b"x" * 129, 0, "main") is None  # blocksize 128
    assert uwsgi.cache_update(b"sp", b"8", True, "main") is True    # an int subclass
    assert uwsgi.cache_get(b"sp", "main") == b"8"
    expect(OverflowError, uwsgi.cache_update, b"sp", b"9", 2 ** 70, "main")
    expect(TypeError, uwsgi.cache_update, b"sp", b"9", "0", "main")
    expect(TypeError, uwsgi.cache_set, b"sp")
    assert uwsgi.cache_get(b"sp", "main") == b"8"
    assert uwsgi.cache_del(b"sp", "main") is True
    expect(TypeError, uwsgi.cache_get)
    expect(TypeError, uwsgi.cache_get, b"memo", "main", 1)
    expect(TypeError, uwsgi.cache_get, bytearray(b"memo"), "main")
    expect(TypeError, uwsgi.cache_get, b"memo", b"main")
    assert uwsgi.cache_get.__name__ == "cache_get"
    assert uwsgi.cache_del("memo", None) is True
    assert uwsgi.cache_get(b"memo", "main") is None
    assert uwsgi.cache_clear(c) is True and uwsgi.cache_keys(c) == []
    return b"ok"


KEYS = [("k%d" % i).encode() for i in range(8)]


def hammer(n, cache):
    """Random writes and verified reads on a few shared keys: every value is one byte
    repeated, so a torn or mixed value shows."""
    rnd = random.Random(os.getpid() ^ int(time.time() * 1e6))
    torn = reads = writes = 0
    for _ in range(n):
        key = rnd.choice(KEYS)
        if rnd.random() < 0.5:
            b = rnd.randrange(256)
            uwsgi.cache_update(key, bytes([b]) * rnd.randrange(1, 500), 0, cache)
            writes += 1
        else:
            v = uwsgi.cache_get(key, cache)
            if v is not None:
                reads += 1
                if v != v[:1] * len(v):
                    torn += 1
    return {"torn": torn, "reads": reads, "writes": writes}


def application(env, start_response):
    path = env["PATH_INFO"]
    qs = env.get("QUERY_STRING", "")
    try:
        if path == "/check":
            body = checks()
        elif path == "/get":
            key, _, cache = qs.partition("&")
            body = repr(uwsgi.cache_get(key, cache or None)).encode()
        elif path == "/set":
            key, value, secs, cache = qs.split("&")
            body = repr(uwsgi.cache_update(key, value.encode(), int(secs), cache or None)).encode()
        elif path == "/lru":
            c = "lru"
            for k in ("a", "b", "c"):
                uwsgi.cache_set(k, b"v", 0, c)
            uwsgi.cache_get("a", c)
            uwsgi.cache_set("d", b"v", 0, c)
            body = repr(sorted(uwsgi.cache_keys(c))).encode()
        elif path == "/hammer":
            body = json.dumps(hammer(int(qs), "stress")).encode()
        elif path == "/pid":
            body = str(os.getpid()).encode()
        elif path == "/writeloop":
            # write until killed (the test SIGKILLs this worker)
            deadline = time.monotonic() + 20
            n = 0
            while time.monotonic() < deadline:
                key = KEYS[n % len(KEYS)]
                uwsgi.cache_update(key, bytes([n % 251]) * (1 + n % 400), 0, "stress")
                n += 1
            body = b"not killed"
        elif path == "/verify":
            bad = []
            keys = uwsgi.cache_keys("stress")
            for k in keys:
                v = uwsgi.cache_get(k, "stress")
                if v is None or v != v[:1] * len(v):
                    bad.append(k)
            ok_write = uwsgi.cache_update("fresh", b"y" * 10, 0, "stress")
            body = json.dumps({"keys": len(keys), "bad": [k.decode() for k in bad],
                               "write": ok_write,
                               "fresh": uwsgi.cache_get("fresh", "stress") == b"y" * 10}).encode()
        else:
            body = b"ok"
    except Exception:
        body = traceback.format_exc().encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
