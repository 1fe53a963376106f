"""Workers that grow or fail, for the recycling tests.

    /pid        this worker's pid
    /grow?MB    keep MB more megabytes (touched, so resident) for the worker's life
    /raise      an unhandled exception (500)
"""
import os

HELD = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        mb = int(environ.get("QUERY_STRING") or 50)
        HELD.append(bytearray(b"x" * (mb << 20)))
    elif path == "/raise":
        raise RuntimeError("recycle me")
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
