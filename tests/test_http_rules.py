"""HTTP/1.1 parsing rules R1-R12 and RT-13 (http-rules.md §1, §2), over raw sockets.

"Reject" = a 4xx (or 501/505 where noted) followed by closing the connection, with no
further request parsed on that connection: most cases append a second, valid request
("the smuggled one") and check it got no response.
"""
import json

import pytest

from helpers import http_request, raw_exchange

SMUGGLED = b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n"


def env_of(srv, raw):
    r = raw_exchange(srv.addr, raw, timeout=5)
    assert r.status == 200, r
    return json.loads(r.body)


def assert_rejected(srv, raw, allowed=(400,), smuggle=True):
    data = raw + (SMUGGLED if smuggle else b"")
    r = raw_exchange(srv.addr, data, timeout=5)
    assert r.status in allowed, "expected %s, got %r" % (allowed, r)
    assert r.closed, "connection not closed after rejection: %r" % r
    assert len(r.statuses) == 1, "bytes after the rejected request were parsed: %r" % r
    return r


def head(lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------- R1

def test_r1_cl_and_te_rejected(fault_server):
    assert_rejected(fault_server, head([
        "POST /len HTTP/1.1", "Host: x", "Content-Length: 4", "Transfer-Encoding: chunked"],
        b"0\r\n\r\n"))


def test_r1_te_and_cl_reverse_order(fault_server):
    assert_rejected(fault_server, head([
        "POST /len HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Content-Length: 5"],
        b"0\r\n\r\n"))


# --------------------------------------------------------------------------- R2

@pytest.mark.parametrize("te,allowed", [
    ("gzip, chunked", (501,)),
    ("chunked, chunked", (400, 501)),
    ("chunked, gzip", (400, 501)),
    ("foo", (501,)),
    ("chunked\r\nTransfer-Encoding: chunked", (400, 501)),
], ids=["coding-before-chunked", "chunked-twice", "chunked-not-final", "unknown", "two-fields"])
def test_r2_transfer_encoding_list(fault_server, te, allowed):
    assert_rejected(fault_server, head(["POST /len HTTP/1.1", "Host: x",
                                        "Transfer-Encoding: " + te], b"0\r\n\r\n"),
                    allowed=allowed)


def test_r2_te_in_http10_rejected(fault_server):
    assert_rejected(fault_server, head(["POST /len HTTP/1.0", "Host: x",
                                        "Transfer-Encoding: chunked"], b"0\r\n\r\n"))


def test_r2_chunked_body_decoded(fault_server):
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    r = raw_exchange(fault_server.addr, head([
        "POST /echo HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Connection: close"],
        body))
    assert r.status == 200 and r.body.endswith(b"hello world"), r


# --------------------------------------------------------------------------- R3

@pytest.mark.parametrize("cl", ["+5", "-5", "5 5", "5,5", "5, 5", "5_0", "1e3", "0x5", "5a",
                                "99999999999999999999999", ""],
                         ids=["plus", "minus", "space", "list", "list-ows", "underscore",
                              "exponent", "hex", "trailing-garbage", "u64-overflow", "empty"])
def test_r3_bad_content_length(fault_server, cl):
    assert_rejected(fault_server, head(["POST /len HTTP/1.1", "Host: x",
                                        "Content-Length: " + cl], b"hello"))


def test_r3_duplicate_content_length_same_value(fault_server):
    assert_rejected(fault_server, head(["POST /len HTTP/1.1", "Host: x", "Content-Length: 5",
                                        "Content-Length: 5"], b"hello"))


def test_r3_valid_content_length(fault_server):
    r = raw_exchange(fault_server.addr, head([
        "POST /echo HTTP/1.1", "Host: x", "Content-Length: 5", "Connection: close"], b"hello"))
    assert r.status == 200 and r.body == b"hello", r


# --------------------------------------------------------------------------- R4

@pytest.mark.parametrize("chunked", [
    b"+5\r\nhello\r\n0\r\n\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b" 5\r\nhello\r\n0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n",
    b"00000000000000005\r\nhello\r\n0\r\n\r\n",
    b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    b"5;a\nb\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
    b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n",
    b"zz\r\nhello\r\n0\r\n\r\n",
], ids=["plus", "minus", "0x", "leading-ws", "trailing-ws", "17-hex-digits", "overflow",
        "ext-bare-lf", "missing-crlf-after-data", "trailer-cl", "trailer-te", "trailer-host",
        "non-hex"])
def test_r4_bad_chunked(fault_server, chunked):
    r = raw_exchange(fault_server.addr, head([
        "POST /len HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"], chunked) + SMUGGLED,
        timeout=5)
    # the head was valid, so the app may already be running: the body error must surface
    # as a 400 (or a 5xx from the app's failed read) and the connection must close
    assert r.status in (400, 500), r
    assert r.closed, r
    assert len(r.statuses) == 1, r
    assert not r.body.startswith(b"5 "), "framing error looked like a short body: %r" % r


def test_r4_chunk_extensions_and_trailers_ok(fault_server):
    body = b"5;name=value;q=\"quoted\"\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n"
    r = raw_exchange(fault_server.addr, head([
        "POST /len HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Connection: close"],
        body))
    assert r.status == 200 and r.body.startswith(b"5 "), r


# --------------------------------------------------------------------------- R5

@pytest.mark.parametrize("line,allowed", [
    (b"GET  / HTTP/1.1", (400,)),
    (b"GET /  HTTP/1.1", (400,)),
    (b"GET\t/ HTTP/1.1", (400,)),
    (b"GE:T / HTTP/1.1", (400,)),
    (b"G\x00ET / HTTP/1.1", (400,)),
    (b"G\xc3\x89T / HTTP/1.1", (400,)),
    (b"GET / HTTP/1.2", (400, 505)),
    (b"GET / HTTP/2.0", (400, 505)),
    (b"GET / http/1.1", (400, 505)),
    (b"GET / HTTP/1.1 ", (400,)),
    (b"GET /", (400, 505)),
    (b"GET foo HTTP/1.1", (400,)),
    (b" GET / HTTP/1.1", (400,)),
], ids=["double-space-1", "double-space-2", "tab", "colon-method", "nul-method",
        "non-ascii-method", "http12", "http20", "lower-version", "trailing-space", "http09",
        "relative-target", "leading-space"])
def test_r5_bad_request_line(fault_server, line, allowed):
    assert_rejected(fault_server, line + b"\r\nHost: x\r\n\r\n", allowed=allowed)


def test_r5_http10_accepted(fault_server):
    r = raw_exchange(fault_server.addr, b"GET / HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.body == b"OK", r


# --------------------------------------------------------------------------- R6

@pytest.mark.parametrize("hdr", [
    b"Host : x",
    b"X-Foo : bar",
    b"X-F\x00oo: bar",
    b"X-F\xc3\xa9: bar",
    b"X-Foo: b\x01ar",
    b"X-Foo: b\x7far",
    b"X-Foo: b\rar",
    b"X-Foo: bar\r\n continued",
    b"X-Foo: bar\r\n\tcontinued",
    b": novalue",
    b"X Foo: bar",
    b"X-Foo",
], ids=["space-before-colon-host", "space-before-colon", "nul-name", "non-ascii-name",
        "ctl-value", "del-value", "bare-cr-value", "obs-fold-space", "obs-fold-tab",
        "empty-name", "space-in-name", "no-colon"])
def test_r6_bad_header(fault_server, hdr):
    raw = b"GET /env HTTP/1.1\r\nHost: x\r\n" + hdr + b"\r\n\r\n"
    assert_rejected(fault_server, raw)


def test_r6_bare_lf_in_value_rejected_or_split_safely(fault_server):
    # "X-Foo: a\nX-Injected: 1": a bare LF is never a line end inside a value
    raw = b"GET /env HTTP/1.1\r\nHost: x\r\nX-Foo: a\nX-Injected: 1\r\nConnection: close\r\n\r\n"
    r = raw_exchange(fault_server.addr, raw)
    if r.status == 200:
        env = json.loads(r.body)
        assert "HTTP_X_INJECTED" not in env["HTTP"], env["HTTP"]
    else:
        assert r.status == 400 and r.closed, r


def test_r6_ows_trimmed_and_tab_allowed(fault_server):
    env = env_of(fault_server, b"GET /env HTTP/1.1\r\nHost: x\r\nX-Pad: \t a\tb \t \r\n"
                               b"Connection: close\r\n\r\n")
    assert env["HTTP"]["HTTP_X_PAD"] == "a\tb"


# --------------------------------------------------------------------------- R7

def test_r7_underscore_headers_dropped(fault_server):
    raw = (b"GET /env HTTP/1.1\r\nHost: x\r\nX-Real-Ip: 10.0.0.1\r\nX_Real_Ip: 6.6.6.6\r\n"
           b"X_Only_Underscore: 1\r\nConnection: close\r\n\r\n")
    r = raw_exchange(fault_server.addr, raw)
    if r.status == 400:     # "refused" is the documented alternative
        assert r.closed
        return
    assert r.status == 200, r
    env = json.loads(r.body)["HTTP"]
    assert env.get("HTTP_X_REAL_IP") == "10.0.0.1", env
    assert "HTTP_X_ONLY_UNDERSCORE" not in env, env
    assert "6.6.6.6" not in json.dumps(env)


# --------------------------------------------------------------------------- R8

def test_r8_duplicate_host(fault_server):
    assert_rejected(fault_server, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")


def test_r8_duplicate_content_type(fault_server):
    assert_rejected(fault_server, head(["POST /len HTTP/1.1", "Host: x",
                                        "Content-Type: text/plain", "Content-Type: text/html",
                                        "Content-Length: 2"], b"hi"))


def test_r8_http11_without_host_accepted(fault_server):
    r = raw_exchange(fault_server.addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert r.status == 200 and r.body == b"OK", r


# --------------------------------------------------------------------------- R9 / RT-13

def test_r9_request_line_too_long(fault_server):
    r = assert_rejected(fault_server, b"GET /" + b"a" * (9 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                        allowed=(414, 400, 431), smuggle=False)
    assert r.status == 414 or r.status in (400, 431)


def test_r9_request_line_9k_is_414(fault_server):
    r = raw_exchange(fault_server.addr, b"GET /" + b"a" * (9 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert r.status == 414 and r.closed, r


def test_r9_header_bytes_over_buffer_size(fault_server):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n"
    r = raw_exchange(fault_server.addr, raw)
    assert r.status == 431 and r.closed, r


def test_r9_too_many_headers(fault_server):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n"
    assert len(raw) < 4096
    r = raw_exchange(fault_server.addr, raw)
    assert r.status == 431 and r.closed, r


def test_r9_limit_post_413_before_body(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app,
                 "--limit-post", "1000")
    # announce 100 MB, send no body: the 413 must come without waiting for it
    r = raw_exchange(srv.addr, b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
                     timeout=5)
    assert r.status == 413, r
    ok = http_request(srv.addr, "POST", "/len", body=b"x" * 1000)
    assert ok.status == 200 and ok.body.startswith(b"1000 "), ok


@pytest.mark.parametrize("raw,allowed", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (5 * 1024) + b"\r\n\r\n", (431, 400)),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)) + b"\r\n", (431, 400)),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", (431, 400)),
    (b"GET /" + b"a" * (9 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414, 400)),
], ids=["5KiB-headers", "70KiB-headers", "200-headers", "9KiB-request-line"])
def test_rt13_oversize_heads(fault_server, raw, allowed):
    before = set(fault_server.children())
    r = raw_exchange(fault_server.addr, raw, timeout=5)
    # a 4xx, or at least a close; never a hang or a crash
    assert r.closed, r
    if r.data:
        assert r.status in allowed, r
    nxt = http_request(fault_server.addr, "GET", "/")
    assert nxt.status == 200 and nxt.body == b"OK", nxt
    assert set(fault_server.children()) == before, "a worker was restarted"


def test_rt13_buffer_size_65535_allows_5k_headers(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app,
                 "--buffer-size", "65535")
    r = raw_exchange(srv.addr, b"GET /env HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (5 * 1024) +
                     b"\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    assert json.loads(r.body)["HTTP"]["HTTP_X_A"] == "a" * 5120


# --------------------------------------------------------------------------- R10

def test_r10_premature_eof_cl_body_is_not_short_body(fault_server):
    r = raw_exchange(fault_server.addr, b"POST /len HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                     + b"y" * 10, shutdown_write=True, timeout=5)
    assert not (r.status == 200 and r.body.startswith(b"10 ")), \
        "truncated body was presented to the app as complete: %r" % r
    assert r.status is None or r.status >= 400, r


def test_r10_premature_eof_chunked_is_not_short_body(fault_server):
    r = raw_exchange(fault_server.addr, b"POST /len HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"a\r\n0123456789\r\n", shutdown_write=True, timeout=5)
    assert not (r.status == 200 and r.body.startswith(b"10 ")), r
    assert r.status is None or r.status >= 400, r


def test_r10_body_read_exactly_then_next_request(fault_server):
    # two pipelined requests: the first body must be consumed exactly
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
           b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    r = raw_exchange(fault_server.addr, raw)
    assert r.statuses == [200, 200], r
    assert b"abc" in r.data and r.data.endswith(b"OK"), r


# --------------------------------------------------------------------------- R11

@pytest.mark.parametrize("path", ["/badheader", "/badheadername", "/badstatus", "/nulheader"])
def test_r11_bad_response_from_app_is_500(fault_server, path):
    r = http_request(fault_server.addr, "GET", path)
    assert r.status == 500, r
    assert b"evil" not in r.head and b"X-Injected" not in r.head, r
    assert b"should not be sent" not in r.data


def test_r11_status_line_version(fault_server):
    for version in (b"HTTP/1.0", b"HTTP/1.1"):
        r = raw_exchange(fault_server.addr, b"GET / " + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert r.data.startswith(b"HTTP/1.1 200 ") or r.data.startswith(b"HTTP/1.0 200 "), r


def test_r11_never_both_cl_and_te(fault_server):
    for path in ("/", "/chunks?n=3", "/big?mb=0.1"):
        for version in ("HTTP/1.1", "HTTP/1.0"):
            r = http_request(fault_server.addr, "GET", path, version=version, timeout=10)
            assert r.status == 200, r
            assert not (r.header("content-length") is not None
                        and r.header("transfer-encoding") is not None), r.head


def test_r11_unframed_app_response_is_delivered_whole(fault_server):
    r = http_request(fault_server.addr, "GET", "/chunks?n=4", timeout=10)
    body = r.body
    if r.header("transfer-encoding") == b"chunked":
        out = b""
        while True:
            size_line, _, body = body.partition(b"\r\n")
            n = int(size_line, 16)
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        body = out
    assert body == b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n", r


def test_keepalive_pipelined_requests(fault_server):
    raw = b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    r = raw_exchange(fault_server.addr, raw)
    assert r.statuses == [200, 200, 200, 200], r
    assert r.closed


# --------------------------------------------------------------------------- R12

def test_r12_path_query_uri(fault_server):
    env = env_of(fault_server, b"GET /env/caf%C3%A9/a%20b%2Fc?x=%20y&z=1 HTTP/1.1\r\nHost: x\r\n"
                               b"Connection: close\r\n\r\n")
    assert env["PATH_INFO"] == "/env/caf\u00c3\u00a9/a b/c"          # decoded, as latin-1
    assert env["QUERY_STRING"] == "x=%20y&z=1"                    # raw
    assert env["REQUEST_URI"] == "/env/caf%C3%A9/a%20b%2Fc?x=%20y&z=1"  # raw


def test_r12_fragment_never_in_query(fault_server):
    r = raw_exchange(fault_server.addr, b"GET /env?q=1#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    if r.status == 400:
        assert r.closed
        return
    assert r.status == 200, r
    env = json.loads(r.body)
    assert env["QUERY_STRING"] == "q=1"
    assert "frag" not in env["PATH_INFO"]


def test_r12_absolute_form_split(fault_server):
    env = env_of(fault_server, b"GET http://example.com/env?z=1 HTTP/1.1\r\nHost: example.com\r\n"
                               b"Connection: close\r\n\r\n")
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "z=1"


def test_r12_no_query(fault_server):
    env = env_of(fault_server, b"GET /env HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert env["QUERY_STRING"] == ""
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
