"""Response framing and body handling as a client sees them: PEP 3333 streaming, HEAD,
wsgi.file_wrapper (sendfile), the write() callable, 100-continue, post-buffering, and the
other spellings of an HTTP socket (`http`, `http11-socket`) plus IPv6."""
import socket
import time

import pytest

from helpers import REPO, connect, http_request, read_response

APP = REPO / "tests" / "apps" / "responses.py"


def start(ruwsgi, *extra, sock=("--http-socket", "127.0.0.1:0")):
    return ruwsgi(*sock, "--wsgi-file", APP, "--processes", "1", *extra)


def test_streamed_blocks_are_sent_as_produced(ruwsgi):
    srv = start(ruwsgi)
    s = connect(srv.addr, timeout=5)
    t0 = time.monotonic()
    s.sendall(b"GET /slow-stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while b"first\n" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    first_at = time.monotonic() - t0
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    # PEP 3333: the first block must not wait for the generator's second one (1 s later).
    assert first_at < 0.8, (first_at, got)
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\n\r\n"


def test_list_body_gets_content_length(ruwsgi):
    srv = start(ruwsgi)
    r = http_request(srv.addr, "GET", "/")
    assert r.status == 200 and r.header("Content-Length") == b"10" and r.body == b"plain body"
    assert r.header("Transfer-Encoding") is None


def test_head_has_length_and_no_body(ruwsgi):
    srv = start(ruwsgi)
    s = connect(srv.addr)
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    # the HEAD response carries the GET's length but no body; the next response follows
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    first, rest = data.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 10" in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nplain body")


def test_file_wrapper_sends_the_file(ruwsgi):
    srv = start(ruwsgi)
    r = http_request(srv.addr, "GET", "/file")
    assert r.status == 200
    assert r.body == APP.read_bytes()
    assert r.header("Content-Length") == str(APP.stat().st_size).encode()


def test_write_callable_then_iterable(ruwsgi):
    srv = start(ruwsgi)
    r = http_request(srv.addr, "GET", "/write")
    assert r.status == 200
    assert b"written " in r.data and b"and returned" in r.data


def test_expect_100_continue(ruwsgi):
    srv = start(ruwsgi)
    s = connect(srv.addr)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
    s.sendall(b"hello")
    status, headers, body, _ = read_response(s)
    assert status == 200 and body == b"hello"
    s.close()


def test_post_buffering_reads_body_before_the_app(ruwsgi):
    srv = start(ruwsgi, "--post-buffering", "65536")
    s = connect(srv.addr)
    s.sendall(b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n")
    for _ in range(4):          # the body trickles in; the loop, not the app, waits for it
        s.sendall(b"x" * 5000)
        time.sleep(0.05)
    status, headers, body, _ = read_response(s)
    assert (status, body) == (200, b"20000")


@pytest.mark.parametrize("option", ["--http", "--http11-socket"])
def test_other_http_socket_spellings(ruwsgi, option):
    srv = ruwsgi(option, "127.0.0.1:0", "--wsgi-file", APP, "--processes", "1", n_sockets=1)
    lst = srv.listeners[0]
    assert lst.kind == option.lstrip("-")
    r = http_request(lst.target, "GET", "/")
    assert (r.status, r.body) == (200, b"plain body")


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_http_socket(ruwsgi):
    srv = ruwsgi("--http-socket", "[::1]:0", "--wsgi-file", APP, "--processes", "1",
                 n_sockets=1, ready=False)
    addr = srv.wait_listening()[0].addr
    assert addr.startswith("[::1]:"), addr
    port = int(addr.rsplit(":", 1)[1])
    # the socket is listening, so the connection queues until a worker accepts it
    with socket.create_connection(("::1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        status, headers, body, _ = read_response(s, timeout=10)
    assert (status, body) == (200, b"plain body")
