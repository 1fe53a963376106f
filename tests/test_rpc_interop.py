"""RPC (modifier1 173) wire compatibility with real uWSGI, proven live in both directions.

Every server here loads tests/apps/rpc_node.py, which registers the RPC functions and whose
HTTP endpoint makes `uwsgi.rpc()` calls for the test. A *caller* instance (HTTP socket,
`--socket-timeout 2`) calls functions on a separate *node* instance (uwsgi-protocol sockets
over TCP and over a unix socket). The pairs are written caller->node:

    ruwsgi->uwsgi    ruwsgi's RPC client against real uWSGI's RPC server
    uwsgi->ruwsgi    real uWSGI's client against ruwsgi's server
    uwsgi->uwsgi     the reference: the same expectations hold for uWSGI itself
    ruwsgi->ruwsgi   ruwsgi on both ends

The raw-packet tests send modifier1 173 requests straight to a node of each kind and check
the reply bytes. Real uWSGI is pyuwsgi from .venv (UWSGI_BIN overrides it).
"""
import concurrent.futures as cf
import json
import socket
import struct
import time
from urllib.parse import urlencode

import pytest

import helpers
from helpers import (APPS, PAIR_IDS, PAIRS, Fleet, http_request, pattern, rpc_packet, tcp_addr,
                     unix_addr, uwsgi_array, uwsgi_vars)

APP = APPS / "rpc_node.py"
SOCKET_TIMEOUT = 2          # --socket-timeout of every caller
KINDS = ("uwsgi", "ruwsgi")


# --------------------------------------------------------------------------- servers

@pytest.fixture(scope="module")
def module_fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("rpc"), APP, SOCKET_TIMEOUT)
    yield fleet
    fleet.close()


@pytest.fixture
def fleet(module_fleet):
    """The module's servers; a test fails if a worker of any of them died meanwhile."""
    yield from module_fleet.guard()


class Reply:
    def __init__(self, raw):
        assert raw.status == 200, "the caller app did not answer 200: %r" % raw
        self.type = (raw.header("X-Rpc-Type") or b"").decode()
        self.error = (raw.header("X-Rpc-Error") or b"").decode()
        self.body = raw.body
        cl = raw.header("Content-Length")
        assert cl is not None and int(cl) == len(self.body), "incomplete reply: %r" % raw

    @property
    def value(self):
        """What the uwsgi call returned: bytes, None, or ('exception', message)."""
        if self.type == "bytes":
            return self.body
        if self.type == "NoneType":
            return None
        return (self.type, self.error or self.body)


def ask(caller, timeout=20.0, **params):
    """Make the caller's app run one call (see rpc_node.py); returns (Reply, seconds)."""
    items = []
    for k, v in params.items():
        for x in (v if isinstance(v, list) else [v]):
            items.append((k, x))
    path = "/?" + urlencode(items)
    t0 = time.monotonic()
    raw = http_request(caller.http.target, "GET", path, timeout=timeout)
    return Reply(raw), time.monotonic() - t0


def rpc(caller, node, fn, *args, **extra):
    reply, _ = ask(caller, op="rpc", node=node, fn=fn, a=list(args), **extra)
    return reply.value


# --------------------------------------------------------------------------- calls across servers

@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_results_come_back_exact(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    for where in (tcp_addr(node), unix_addr(node)):
        assert rpc(caller, where, "hello", "x") == b"hello x", where
        assert rpc(caller, where, "hello", "x", nodetype="bytes") == b"hello x", where
    every_byte = bytes(range(256))      # sent percent-encoded, decoded as Latin-1 by the app
    assert rpc(caller, tcp_addr(node), "hello", every_byte) == b"hello " + every_byte
    assert rpc(caller, tcp_addr(node), "hello") == b"hello "


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_arguments(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    where = tcp_addr(node)
    assert rpc(caller, where, "echo_args") == b"0:"
    assert rpc(caller, where, "echo_args", "a", "bb", "ccc") == b"3:a|bb|ccc"
    # an empty argument is sent as a zero-length item, which the server skips
    assert rpc(caller, where, "echo_args", "a", "", "c") == b"2:a|c"
    assert rpc(caller, where, "echo_args", "", "b") == b"1:b"
    # 254 arguments: the most a request can carry (255 items with the name)
    want = b"254:" + b"|".join(b"%d" % i for i in range(254))
    assert rpc(caller, where, "echo_args", nargs=254) == want


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_big_replies(fleet, caller_kind, node_kind):
    """Up to 65535 bytes come in a standard reply, from 65536 on in the modifier2 5 form
    (a CONTENT_LENGTH dict, then the raw bytes)."""
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    for size in (1, 65535, 65536, 100000, 1 << 20):
        got = rpc(caller, tcp_addr(node), "big", str(size))
        assert isinstance(got, bytes) and len(got) == size, (size, repr(got)[:200])
        assert got == pattern(size), "reply of %d bytes differs" % size
    assert rpc(caller, unix_addr(node), "big", "100000") == pattern(100000)


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_no_result_is_none(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    where = tcp_addr(node)
    assert rpc(caller, where, "nope", "x") is None           # unknown function
    assert rpc(caller, where, "nothing") is None             # returned b""
    assert rpc(caller, where, "text") is None                # returned a str
    assert rpc(caller, where, "none") is None                # returned None
    assert rpc(caller, where, "boom") is None                # raised
    assert rpc(caller, unix_addr(node), "nope") is None
    # and both ends still work afterwards
    assert rpc(caller, where, "hello", "again") == b"hello again"


@pytest.mark.parametrize("caller_kind", KINDS)
def test_dead_node_is_none_within_the_socket_timeout(fleet, caller_kind, tmp_path):
    caller = fleet.caller(caller_kind)
    # a closed port and a missing unix socket: refused at once
    closed = helpers.free_port()
    for where in ("127.0.0.1:%d" % closed, str(tmp_path / "missing.sock")):
        reply, took = ask(caller, op="rpc", node=where, fn="hello", a="x")
        assert reply.value is None, (where, reply.value)
        assert took < SOCKET_TIMEOUT + 1.5, (where, took)
    # a node that accepts (the kernel's backlog does) but never answers: the caller must
    # give up after --socket-timeout, not earlier, not much later
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        reply, took = ask(caller, op="rpc", node="127.0.0.1:%d" % hole.getsockname()[1],
                          fn="hello", a="x")
    assert reply.value is None, reply.value
    assert SOCKET_TIMEOUT - 0.5 <= took <= SOCKET_TIMEOUT + 2.5, took
    path = str(tmp_path / "hole.sock")
    with socket.socket(socket.AF_UNIX) as hole:
        hole.bind(path)
        hole.listen(8)
        reply, took = ask(caller, op="rpc", node=path, fn="hello", a="x")
    assert reply.value is None, reply.value
    assert SOCKET_TIMEOUT - 0.5 <= took <= SOCKET_TIMEOUT + 2.5, took
    # the caller is fine afterwards
    assert ask(caller, op="call", fn="hello", a="y")[0].value == b"hello y"


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_many_calls_in_a_row(fleet, caller_kind, node_kind):
    """200 sequential calls from one worker, each with its own argument: a reply read from
    a connection the node already closed, or left over from an earlier call, shows up."""
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    for where in (tcp_addr(node), unix_addr(node)):
        reply, _ = ask(caller, timeout=60, op="seq", node=where, n="200")
        out = json.loads(reply.body)
        assert out["ok"] == 200 and not out["bad"], (where, out)


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_concurrent_callers(fleet, caller_kind, node_kind):
    """Four threads of one caller worker call the same node at once, each with its own
    arguments: no reply may reach the wrong thread."""
    name = "%s-caller-threads" % caller_kind
    caller = fleet.cached(name, lambda: fleet.start(caller_kind, [
        "--master", "--processes", "1", "--threads", "4", "--http-socket", "127.0.0.1:0",
        "--socket-timeout", SOCKET_TIMEOUT, "--wsgi-file", APP], name))
    node = fleet.node(node_kind)

    def one(tag):
        where = tcp_addr(node) if tag in "ac" else unix_addr(node)
        reply, _ = ask(caller, timeout=60, op="seq", node=where, n="150", tag=tag)
        return tag, json.loads(reply.body)

    with cf.ThreadPoolExecutor(4) as ex:
        for tag, out in ex.map(one, "abcd"):
            assert out["ok"] == 150 and not out["bad"], (tag, out)


@pytest.mark.parametrize("caller_kind", KINDS)
def test_ruwsgi_node_recycling_its_workers(fleet, caller_kind):
    """A ruwsgi node whose workers are replaced every 10 requests (RPC calls count): a
    worker on its way out closes its kept connections after its last reply, and every call
    is still answered. (Not run against a uWSGI node: with --max-requests 10 and
    --min-worker-lifetime 0, uWSGI 2.0.30 itself closes about one call in a hundred without
    a reply while it replaces a worker, and throttles the respawns.)"""
    if helpers.FLAVOR == "uwsgi":
        pytest.skip("the node would be real uWSGI, which drops calls while recycling")
    caller = fleet.caller(caller_kind)
    name = "ruwsgi-recycling-node"
    node = fleet.cached(name, lambda: fleet.start("ruwsgi", fleet.node_args(
        name, ["--max-requests", "10", "--min-worker-lifetime", "0"]), name))
    for where in (tcp_addr(node), unix_addr(node)):
        reply, _ = ask(caller, timeout=60, op="seq", node=where, n="100", tag="r")
        out = json.loads(reply.body)
        assert out["ok"] == 100 and not out["bad"], (where, out)
    assert "recycled after" in node.log_text(), node.log_tail()


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_node_restarted_between_calls(fleet, caller_kind, node_kind, tmp_path):
    """The node is replaced by a new instance on the same address between two calls: the
    first call to the new one must already be answered by it."""
    caller = fleet.caller(caller_kind)
    port = helpers.free_port()
    sock = tmp_path / "restart.sock"
    pids = []
    for round_ in range(2):
        name = "restart-%s-%s-%d" % (caller_kind, node_kind, round_)
        if sock.exists():
            sock.unlink()
        node = fleet.start(node_kind, ["--master", "--processes", "1",
                                       "--socket", "127.0.0.1:%d" % port, "--socket", sock,
                                       "--wsgi-file", APP], name)
        try:
            got_tcp = rpc(caller, "127.0.0.1:%d" % port, "pid")
            got_unix = rpc(caller, str(sock), "pid")
            assert isinstance(got_tcp, bytes) and got_tcp.isdigit(), (round_, got_tcp)
            assert got_unix == got_tcp, (round_, got_tcp, got_unix)
            assert int(got_tcp) in node.children(), (round_, got_tcp, node.children())
            pids.append(got_tcp)
            assert rpc(caller, "127.0.0.1:%d" % port, "hello", "r%d" % round_) == \
                b"hello r%d" % round_
        finally:
            node.stop()
    assert pids[0] != pids[1]


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_big_arguments(fleet, caller_kind, node_kind):
    """A request of up to 65535 bytes, on a node whose --buffer-size can hold it."""
    caller = fleet.caller(caller_kind)
    name = "%s-bignode" % node_kind
    node = fleet.cached(name, lambda: fleet.start(
        node_kind, fleet.node_args(name, ["--buffer-size", "65535"]), name))
    # name (2+9) + one argument (2+65000) = 65013 bytes of array
    got = rpc(caller, tcp_addr(node), "echo_args", alen="65000")
    assert got == b"1:" + pattern(65000), repr(got)[:200]
    # the largest request: 2+9 + 2+65522 = 65535
    got = rpc(caller, unix_addr(node), "echo_args", alen="65522")
    assert got == b"1:" + pattern(65522), repr(got)[:200]


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_request_limits(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    where = tcp_addr(node)
    # the node refuses a request larger than its --buffer-size (4096 by default)
    assert rpc(caller, where, "echo_args", alen="4000") == b"1:" + pattern(4000)
    assert rpc(caller, where, "echo_args", alen="5000") is None
    # a request over 65535 bytes cannot be framed: the client gives up, no exception
    assert rpc(caller, where, "echo_args", alen="65531") is None
    assert rpc(caller, where, "hello", "still") == b"hello still"


@pytest.mark.parametrize("kind", KINDS)
def test_local_calls(fleet, kind):
    caller = fleet.caller(kind)
    assert ask(caller, op="call", fn="hello", a="x")[0].value == b"hello x"
    assert ask(caller, op="rpc", fn="hello", a="x")[0].value == b"hello x"      # node None
    assert ask(caller, op="call", fn="big", a="100000")[0].value == pattern(100000)
    # no array is parsed for a local call: an empty argument reaches the function
    assert ask(caller, op="call", fn="echo_args", a=["a", "", "c"])[0].value == b"3:a||c"
    assert ask(caller, op="call", fn="nope")[0].value is None
    assert ask(caller, op="call", fn="nothing")[0].value is None
    out = json.loads(ask(caller, op="list")[0].body)
    assert out["type"] == "tuple" and out["item_types"] == ["bytes"], out
    assert set(out["names"]) >= {"hello", "echo_args", "big", "nothing", "raw_http"}, out
    assert set(out["registered"].values()) == {"True"}, out


# --------------------------------------------------------------------------- raw packets

def read_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        got = sock.recv(min(65536, n - len(buf)))
        if not got:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += got
    return buf


def read_rpc_reply(sock, timeout=5.0):
    """One standard RPC reply, as raw bytes (header, optional dict, payload), read by its
    framing, so a node that keeps the connection open does not make this wait."""
    deadline = time.monotonic() + timeout
    head = read_exact(sock, 4, deadline)
    _, size, mod2 = struct.unpack("<BHB", head)
    body = read_exact(sock, size, deadline)
    if mod2 != 5:
        return head + body
    pairs = parse_vars(body)
    return head + body + read_exact(sock, int(pairs[b"CONTENT_LENGTH"]), deadline)


def parse_vars(data):
    out, pos = {}, 0
    while pos < len(data):
        (kl,) = struct.unpack_from("<H", data, pos)
        k = data[pos + 2:pos + 2 + kl]
        pos += 2 + kl
        (vl,) = struct.unpack_from("<H", data, pos)
        out[k] = data[pos + 2:pos + 2 + vl]
        pos += 2 + vl
    return out


def tcp_target(node):
    return ("127.0.0.1", int(tcp_addr(node).rsplit(":", 1)[1]))


def exchange(node, packet, timeout=5.0):
    s = helpers.connect(tcp_target(node), timeout=timeout)
    try:
        s.sendall(packet)
        return read_rpc_reply(s, timeout)
    finally:
        s.close()


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_standard_replies(fleet, node_kind):
    node = fleet.node(node_kind)
    assert exchange(node, rpc_packet("hello", "x")) == b"\xad\x07\x00\x00hello x"
    assert exchange(node, rpc_packet("echo_args", "a", "", "c")) == b"\xad\x05\x00\x002:a|c"
    # the largest standard reply
    assert exchange(node, rpc_packet("big", "65535")) == b"\xad\xff\xff\x00" + pattern(65535)
    # one more byte: modifier2 5, a vars dict with CONTENT_LENGTH, then the payload
    d = uwsgi_vars([("CONTENT_LENGTH", "65536")])
    want = struct.pack("<BHB", 173, len(d), 5) + d + pattern(65536)
    assert exchange(node, rpc_packet("big", "65536")) == want
    d = uwsgi_vars([("CONTENT_LENGTH", "1000000")])
    want = struct.pack("<BHB", 173, len(d), 5) + d + pattern(1000000)
    assert exchange(node, rpc_packet("big", "1000000"), timeout=15) == want


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_no_result(fleet, node_kind):
    """A standard call without a result: uWSGI closes the connection without a byte;
    ruwsgi answers an empty reply, (173, 0, 0), and keeps the connection for the next call
    (its module docs say so). uWSGI's client reads both as None (test_no_result_is_none)."""
    node = fleet.node(node_kind)
    calls = [rpc_packet("nope", "x"), rpc_packet("nothing"), rpc_packet("text"),
             rpc_packet("none"), rpc_packet("boom")]
    if node_kind == "uwsgi" or helpers.FLAVOR == "uwsgi":     # real uWSGI either way
        for pkt in calls:
            r = helpers.raw_exchange(tcp_target(node), pkt, timeout=5)
            assert r.closed and r.data == b"", (pkt, r)
        return
    s = helpers.connect(tcp_target(node), timeout=5)
    try:
        for pkt in calls:
            s.sendall(pkt)
            assert read_rpc_reply(s) == b"\xad\x00\x00\x00", pkt
        s.sendall(rpc_packet("hello", "same connection"))
        assert read_rpc_reply(s) == b"\xad\x15\x00\x00hello same connection"
    finally:
        s.close()


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_bad_packets_close_without_a_reply(fleet, node_kind):
    node = fleet.node(node_kind)
    overrun = uwsgi_array(["hello"]) + b"\x05\x00ab"             # an item runs past the end
    for pkt in (struct.pack("<BHB", 173, 0, 0),                    # no function name at all
                struct.pack("<BHB", 173, len(overrun), 0) + overrun):
        r = helpers.raw_exchange(tcp_target(node), pkt, timeout=5)
        assert r.closed and r.data == b"", (pkt, r)
    assert exchange(node, rpc_packet("hello", "ok")) == b"\xad\x08\x00\x00hello ok"


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_modifier2_1_writes_the_bare_result(fleet, node_kind):
    node = fleet.node(node_kind)
    addr = tcp_target(node)
    r = helpers.raw_exchange(addr, rpc_packet("hello", "x", modifier2=1), timeout=5)
    assert r.closed and r.data == b"hello x", r
    r = helpers.raw_exchange(addr, rpc_packet("big", "100000", modifier2=1), timeout=10)
    assert r.closed and r.data == pattern(100000), len(r.data)
    r = helpers.raw_exchange(addr, rpc_packet("nope", modifier2=1), timeout=5)
    assert r.closed and r.data == b"", r


def bridge(node, pairs, timeout=5.0):
    body = uwsgi_vars(pairs)
    addr = tcp_target(node)
    return helpers.raw_exchange(addr, struct.pack("<BHB", 173, len(body), 2) + body,
                                timeout=timeout)


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_http_bridge(fleet, node_kind):
    """modifier2 2: a vars block in, an HTTP response out."""
    node = fleet.node(node_kind)
    r = bridge(node, [("PATH_INFO", "/hello/world")])
    assert r.closed and r.data.startswith(b"HTTP/1.0 200 OK\r\n"), r
    assert r.header("Content-Type") == b"application/binary", r
    assert r.header("Content-Length") == b"11" and r.body == b"hello world", r
    # Accept gives the Content-Type unless it is */* or *
    for accept, ctype in (("text/plain", b"text/plain"), ("*/*", b"application/binary"),
                          ("*", b"application/binary")):
        r = bridge(node, [("PATH_INFO", "/hello/world"), ("HTTP_ACCEPT", accept)])
        assert r.status == 200 and r.header("Content-Type") == ctype, (accept, r)
    # empty segments vanish; no leading slash is needed
    r = bridge(node, [("PATH_INFO", "//echo_args//a///b/")])
    assert r.status == 200 and r.body == b"2:a|b", r
    r = bridge(node, [("PATH_INFO", "hello/there")])
    assert r.status == 200 and r.body == b"hello there", r
    r = bridge(node, [("PATH_INFO", "/big/70000")], timeout=10)
    assert r.status == 200 and r.header("Content-Length") == b"70000", r
    assert r.body == pattern(70000)
    # unknown function or no result: 404; no function at all: 500
    for path in ("/nope/x", "/nothing", "/text"):
        r = bridge(node, [("PATH_INFO", path)])
        assert r.closed and r.status == 404, (path, r)
    for pairs in ([("PATH_INFO", "/")], [("PATH_INFO", "")], [("REQUEST_URI", "/hello/x")]):
        r = bridge(node, pairs)
        assert r.closed and r.status == 500, (pairs, r)


@pytest.mark.parametrize("node_kind", KINDS)
def test_raw_http_bridge_status_line_follows_server_protocol(fleet, node_kind):
    """The bridge's status line carries the request's SERVER_PROTOCOL (HTTP/1.0 without
    one), as for any response over the uwsgi protocol."""
    node = fleet.node(node_kind)
    r = bridge(node, [("PATH_INFO", "/hello/world"), ("SERVER_PROTOCOL", "HTTP/1.1")])
    assert r.data.startswith(b"HTTP/1.1 200 OK\r\n"), r
    r = bridge(node, [("PATH_INFO", "/nope"), ("SERVER_PROTOCOL", "HTTP/1.1")])
    assert r.data.startswith(b"HTTP/1.1 404 Not Found\r\n"), r
    r = bridge(node, [("PATH_INFO", "/hello/world")])
    assert r.data.startswith(b"HTTP/1.0 200 OK\r\n"), r
