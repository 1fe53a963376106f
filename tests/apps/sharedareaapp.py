"""Shared areas test app."""
import sys
import traceback

import uwsgi


def expect(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return str(e)
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc.__name__))


def checks():
    # area 0: `sharedarea 1` (one page); area 1: `size=64`, rounded up to one page
    size = len(uwsgi.sharedarea_read(0, 0))
    assert size == 4096, size
    assert len(uwsgi.sharedarea_read(1, 0)) == 4096
    assert uwsgi.sharedarea_write(0, 100, b"hello") is None
    assert uwsgi.sharedarea_read(0, 100, 5) == b"hello"
    assert uwsgi.sharedarea_read(0, 4090) == b"\0" * 6
    uwsgi.sharedarea_write(0, 200, "text")
    assert uwsgi.sharedarea_read(0, 200, 4) == b"text"
    uwsgi.sharedarea_write8(0, 0, 255)
    assert uwsgi.sharedarea_read8(0, 0) == -1
    assert uwsgi.sharedarea_readbyte(0, 0) == -1
    uwsgi.sharedarea_write16(0, 8, 0x1234)
    assert uwsgi.sharedarea_read16(0, 8) == 0x1234
    uwsgi.sharedarea_write32(0, 16, -2)
    assert uwsgi.sharedarea_read32(0, 16) == -2
    uwsgi.sharedarea_write64(0, 24, 1 << 40)
    assert uwsgi.sharedarea_read64(0, 24) == 1 << 40
    assert uwsgi.sharedarea_readlong(0, 24) == 1 << 40
    uwsgi.sharedarea_writelong(0, 32, 7)
    uwsgi.sharedarea_inc64(0, 32)
    uwsgi.sharedarea_inclong(0, 32, 10)
    uwsgi.sharedarea_dec64(0, 32, 3)
    assert uwsgi.sharedarea_read64(0, 32) == 15
    uwsgi.sharedarea_write32(0, 40, 2147483647)
    uwsgi.sharedarea_inc32(0, 40)
    assert uwsgi.sharedarea_read32(0, 40) == -2147483648
    uwsgi.sharedarea_dec32(0, 40, 1)
    assert uwsgi.sharedarea_read32(0, 40) == 2147483647
    # errors: bad id, bad position, bytes past the end
    assert expect(ValueError, uwsgi.sharedarea_read, 5, 0) == \
        "error calling uwsgi_sharedarea_read()"
    assert expect(ValueError, uwsgi.sharedarea_read, 0, 4097) == \
        "error calling uwsgi_sharedarea_read()"
    assert expect(ValueError, uwsgi.sharedarea_read, 0, 4000, 200) == \
        "error calling uwsgi_sharedarea_read()"
    assert expect(ValueError, uwsgi.sharedarea_write, 0, 4094, b"abc") == \
        "error calling uwsgi_sharedarea_write()"
    assert uwsgi.sharedarea_read(0, 4094, 2) == b"\0\0"
    expect(ValueError, uwsgi.sharedarea_read64, 0, 4090)
    expect(ValueError, uwsgi.sharedarea_write64, 0, -1, 1)
    expect(ValueError, uwsgi.sharedarea_inc64, 0, 4093)
    expect(OverflowError, uwsgi.sharedarea_write8, 0, 0, 256)
    # locks and the memoryview
    uwsgi.sharedarea_wlock(1)
    uwsgi.sharedarea_inc64(1, 0, 5)      # counters work under the app's own lock
    uwsgi.sharedarea_unlock(1)
    uwsgi.sharedarea_rlock(1)
    uwsgi.sharedarea_unlock(1)
    uwsgi.sharedarea_unlock(1)           # not held: nothing happens
    mv = uwsgi.sharedarea_memoryview(1)
    assert len(mv) == 4096 and not mv.readonly
    mv[100:103] = b"xyz"
    assert uwsgi.sharedarea_read(1, 100, 3) == b"xyz"
    return b"ok"


def application(env, start_response):
    path = env["PATH_INFO"]
    qs = env.get("QUERY_STRING", "")
    try:
        if path == "/check":
            body = checks()
        elif path == "/has":
            body = repr(hasattr(uwsgi, "sharedarea_read")).encode()
        elif path == "/write":
            uwsgi.sharedarea_write(0, 1000, qs.encode())
            body = str(uwsgi.worker_id()).encode()
        elif path == "/read":
            body = uwsgi.sharedarea_read(0, 1000, int(env.get("HTTP_X_LEN", "5")))
        elif path == "/count":
            for _ in range(int(qs)):
                uwsgi.sharedarea_inc64(0, 2000)
            body = b"done"
        elif path == "/total":
            body = str(uwsgi.sharedarea_read64(0, 2000)).encode()
        else:
            body = b"ok"
    except Exception:
        body = traceback.format_exc().encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
