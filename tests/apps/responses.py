"""Test app for response framing: streaming, HEAD, file_wrapper, 100-continue, bodies."""
import os
import time

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "responses.py")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow-stream":
        # Two blocks a second apart: the first must reach the client before the second exists.
        start_response("200 OK", [("Content-Type", "text/plain")])

        def blocks():
            yield b"first\n"
            time.sleep(1.0)
            yield b"second\n"
        return blocks()
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/x-python")])
        f = open(DATA_FILE, "rb")
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/len":
        n = 0
        while True:
            chunk = environ["wsgi.input"].read(65536)
            if not chunk:
                break
            n += len(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(n).encode()]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain body"]
