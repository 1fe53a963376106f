"""Raw uwsgi protocol packets (modifier1 0) over TCP and unix sockets."""
import json
import struct

import pytest

from helpers import http_request, raw_exchange, uwsgi_exchange, uwsgi_packet, uwsgi_request_vars


@pytest.fixture(scope="module")
def usrv(tmp_path_factory, request):
    from conftest import FAULT_APP, Factory
    d = tmp_path_factory.mktemp("uproto")
    f = Factory(d)
    srv = f("--socket", "127.0.0.1:0", "--socket", d / "u.sock", "--http-socket", "127.0.0.1:0",
            "--wsgi-file", FAULT_APP, "--master", "--processes", "2")
    srv.start_workers = set(srv.wait_children(2))
    yield srv
    try:
        assert "DAMN" not in srv.log_text(), srv.log_tail()
        assert set(srv.children()) == srv.start_workers, "workers were restarted"
    finally:
        f.cleanup()


def tcp(srv):
    return [x for x in srv.listeners if x.kind == "socket" and not x.is_unix][0].target


def unix(srv):
    return [x for x in srv.listeners if x.kind == "socket" and x.is_unix][0].target


def assert_alive(srv):
    r = uwsgi_exchange(tcp(srv), "/")
    assert r.status == 200 and r.body == b"OK", r
    r = http_request(srv.http.target, "GET", "/")
    assert r.status == 200, r


def test_normal_request_tcp(usrv):
    r = uwsgi_exchange(tcp(usrv), "/env", query="a=1")
    assert r.status == 200, r
    assert r.data.startswith(b"HTTP/1.1 200")
    env = json.loads(r.body)
    assert env["PATH_INFO"] == "/env" and env["QUERY_STRING"] == "a=1"
    assert env["REQUEST_METHOD"] == "GET"


def test_normal_request_unix(usrv):
    r = uwsgi_exchange(unix(usrv), "/pid")
    assert r.status == 200 and r.body.isdigit(), r


def test_post_body(usrv):
    body = b"q" * 100000
    r = uwsgi_exchange(tcp(usrv), "/len", body=body, method="POST", timeout=10)
    assert r.status == 200, r
    import hashlib
    assert r.body == b"100000 " + hashlib.sha256(body).hexdigest().encode()


def test_response_protocol_follows_request(usrv):
    pkt = uwsgi_packet([(k, "HTTP/1.0" if k == "SERVER_PROTOCOL" else v)
                        for k, v in uwsgi_request_vars("/")])
    r = raw_exchange(tcp(usrv), pkt)
    assert r.data.startswith(b"HTTP/1.0 200"), r


def test_datasize_over_buffer_size_closed(usrv):
    pairs = uwsgi_request_vars("/") + [("HTTP_X_PAD", "p" * 5000)]
    pkt = uwsgi_packet(pairs)
    assert struct.unpack("<H", pkt[1:3])[0] > 4096
    r = raw_exchange(tcp(usrv), pkt, timeout=5)
    assert r.closed and r.data == b"", r
    assert_alive(usrv)


def test_zero_length_key_closed(usrv):
    pkt = uwsgi_packet(uwsgi_request_vars("/") + [("", "value")])
    r = raw_exchange(tcp(usrv), pkt, timeout=5)
    assert r.closed and r.data == b"", r
    assert_alive(usrv)


def test_truncated_vars_closed(usrv):
    good = uwsgi_packet(uwsgi_request_vars("/"))
    # the last var claims a longer value than the packet holds
    bad_tail = struct.pack("<H", 4) + b"XKEY" + struct.pack("<H", 500) + b"short"
    body = good[4:] + bad_tail
    pkt = struct.pack("<BHB", 0, len(body), 0) + body
    r = raw_exchange(tcp(usrv), pkt, timeout=5)
    assert r.closed and r.data == b"", r
    assert_alive(usrv)


def test_keylen_past_end_closed(usrv):
    body = uwsgi_packet(uwsgi_request_vars("/"))[4:] + struct.pack("<H", 300) + b"abc"
    pkt = struct.pack("<BHB", 0, len(body), 0) + body
    r = raw_exchange(tcp(usrv), pkt, timeout=5)
    assert r.closed and r.data == b"", r
    assert_alive(usrv)


def test_short_packet_then_eof_closed(usrv):
    pkt = uwsgi_packet(uwsgi_request_vars("/"))
    r = raw_exchange(tcp(usrv), pkt[: len(pkt) // 2], shutdown_write=True, timeout=5)
    assert r.closed and r.data == b"", r
    assert_alive(usrv)


@pytest.mark.parametrize("modifier1", [10, 17, 22], ids=["management", "spooler", "raw-eval"])
def test_unserved_modifiers_closed(usrv, modifier1):
    pkt = uwsgi_packet([("x", "import os; os.system('touch /tmp/ruwsgi-pwned')")], modifier1=modifier1)
    r = raw_exchange(tcp(usrv), pkt, timeout=5)
    assert r.closed and b"200" not in r.data[:20], r
    import os
    assert not os.path.exists("/tmp/ruwsgi-pwned")
    assert_alive(usrv)


def test_many_requests_one_after_another(usrv):
    for i in range(50):
        r = uwsgi_exchange(tcp(usrv), "/pid")
        assert r.status == 200, (i, r)
