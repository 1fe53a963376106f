"""Remote caches (modifier1 111, the magic interface) across ruwsgi and real uWSGI.

Every server here loads tests/apps/cache_node.py. A *node* instance holds the caches
(`--cache2 name=shared,...` first, so it is also the default cache, and `second`) behind
uwsgi-protocol sockets (TCP and unix); a *caller* instance (HTTP socket, `--socket-timeout
2`, a local cache of its own) runs `uwsgi.cache_*` with `name@node` identifiers on the
test's behalf. The pairs are written caller->node:

    ruwsgi->uwsgi    ruwsgi's cache client against real uWSGI's cache server
    uwsgi->ruwsgi    real uWSGI's client against ruwsgi's server
    uwsgi->uwsgi     the reference: the same expectations hold for uWSGI itself
    ruwsgi->ruwsgi   ruwsgi on both ends

Further tests send raw 111 packets to nodes of each kind, and run uWSGI's client against
small scripted nodes (one that keeps the connection after replying, as ruwsgi does; one
that never answers). Real uWSGI is pyuwsgi from .venv (UWSGI_BIN overrides it).
"""
import socket
import struct
import threading
import time
from urllib.parse import urlencode

import pytest

from helpers import (APPS, PAIR_IDS, PAIRS, Fleet, http_request, pattern, tcp_addr,
                     unix_addr, uwsgi_vars)

APP = APPS / "cache_node.py"
SOCKET_TIMEOUT = 2            # --socket-timeout of every caller
MAX_ITEM = 200000             # blocksize of the node's `shared` cache
# Both caches have the same number of items: uWSGI 2.0.30's `clear` walks the item count of
# the *first* cache whatever cache it clears, so clearing a smaller second cache reads past
# its table and (measured) sometimes kills the worker with a segmentation fault.
NODE_CACHES = ["--cache2", "name=shared,items=100,blocksize=%d" % MAX_ITEM,
               "--cache2", "name=second,items=100,blocksize=1000"]


# --------------------------------------------------------------------------- servers

@pytest.fixture(scope="module")
def module_fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("cache"), APP, SOCKET_TIMEOUT, node_extra=NODE_CACHES,
                  caller_extra=["--cache2", "name=local,items=10,blocksize=1000"])
    yield fleet
    fleet.close()


@pytest.fixture
def fleet(module_fleet):
    """The module's servers; a test fails if a worker of any of them died meanwhile."""
    yield from module_fleet.guard()


class Reply:
    def __init__(self, raw, what):
        assert raw.status == 200, "the caller app did not answer 200 for %s: %r" % (what, raw)
        self.type = (raw.header("X-Cache-Type") or b"").decode()
        self.error = (raw.header("X-Cache-Error") or b"").decode()
        self.elapsed = float((raw.header("X-Cache-Elapsed") or b"0").decode())
        self.body = raw.body

    @property
    def value(self):
        """What the uwsgi call returned: bytes, True/False/None, an int, or
        ('exception', message)."""
        if self.type == "bytes":
            return self.body
        if self.type == "NoneType":
            return None
        if self.type == "bool":
            return self.body == b"True"
        if self.type == "int":
            return int(self.body)
        return (self.type, self.error or self.body)


def ask(caller, **params):
    """Make the caller's app run one cache call (see cache_node.py); returns the Reply."""
    path = "/?" + urlencode(params, encoding="latin-1")
    raw = http_request(caller.http.target, "GET", path, timeout=20.0)
    return Reply(raw, params)


def op(caller, name, **params):
    return ask(caller, op=name, **params).value


# --------------------------------------------------------------------------- across servers

@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_get_set_update_del_exists(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    for where in (tcp_addr(node), unix_addr(node)):
        c = "shared@" + where
        assert op(caller, "clear", cache=c) is True, where
        assert op(caller, "get", key="k", cache=c) is None, where
        assert op(caller, "exists", key="k", cache=c) is None, where
        assert op(caller, "set", key="k", val="v1", cache=c) is True, where
        # set never overwrites
        assert op(caller, "set", key="k", val="v2", cache=c) is None, where
        assert op(caller, "get", key="k", cache=c) == b"v1", where
        assert op(caller, "exists", key="k", cache=c) is True, where
        assert op(caller, "update", key="k", val="v3", cache=c) is True, where
        assert op(caller, "get", key="k", cache=c) == b"v3", where
        assert op(caller, "del", key="k", cache=c) is True, where
        assert op(caller, "del", key="k", cache=c) is None, where
        assert op(caller, "get", key="k", cache=c) is None, where
    # every byte value in keys and values
    every = bytes(range(256)).decode("latin-1")
    c = "shared@" + tcp_addr(node)
    assert op(caller, "update", key="b" + every, val=every, cache=c) is True
    assert op(caller, "get", key="b" + every, cache=c) == every.encode("latin-1")
    # the remote cache is the node's, not the caller's local one
    assert op(caller, "get", key="b" + every) is None


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_default_and_second_cache(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    where = tcp_addr(node)
    assert op(caller, "clear", cache="second@" + where) is True
    assert op(caller, "update", key="d", val="in-shared", cache="shared@" + where) is True
    # "@node" is the node's default cache: its first one, `shared`
    assert op(caller, "get", key="d", cache="@" + where) == b"in-shared"
    assert op(caller, "get", key="d", cache="second@" + where) is None
    assert op(caller, "update", key="d", val="in-second", cache="second@" + where) is True
    assert op(caller, "get", key="d", cache="second@" + where) == b"in-second"
    assert op(caller, "get", key="d", cache="shared@" + where) == b"in-shared"
    # clearing one cache leaves the other alone
    assert op(caller, "clear", cache="second@" + where) is True
    assert op(caller, "get", key="d", cache="second@" + where) is None
    assert op(caller, "get", key="d", cache="shared@" + where) == b"in-shared"


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_unknown_cache(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    c = "nosuchcache@" + tcp_addr(node)
    assert op(caller, "get", key="k", cache=c) is None
    assert op(caller, "set", key="k", val="v", cache=c) is None
    assert op(caller, "update", key="k", val="v", cache=c) is None
    assert op(caller, "exists", key="k", cache=c) is None
    assert op(caller, "del", key="k", cache=c) is None
    assert op(caller, "clear", cache=c) is None


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_values_up_to_the_max_item_size(fleet, caller_kind, node_kind):
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    c = "shared@" + tcp_addr(node)
    for size in (1, 4096, 65535, 65536, 100000, MAX_ITEM):
        key = "size%d" % size
        assert op(caller, "update", key=key, vlen=size, cache=c) is True, size
        got = op(caller, "get", key=key, cache=c)
        assert isinstance(got, bytes) and len(got) == size, (size, repr(got)[:100])
        assert got == pattern(size), size
    # one byte more than the cache's block: refused, nothing stored
    assert op(caller, "update", key="toobig", vlen=MAX_ITEM + 1, cache=c) is None
    assert op(caller, "get", key="toobig", cache=c) is None
    # the `second` cache has 1000-byte blocks
    c2 = "second@" + tcp_addr(node)
    assert op(caller, "update", key="s", vlen=1000, cache=c2) is True
    assert op(caller, "update", key="s", vlen=1001, cache=c2) is None
    assert op(caller, "get", key="s", cache=c2) == pattern(1000)
    assert op(caller, "clear", cache=c2) is True


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_expiry(fleet, caller_kind, node_kind):
    """An item set to expire in 2 s is there at once and gone a few seconds later (uWSGI's
    sweeper runs every 3 s, so up to ~5 s; ruwsgi also checks expiry on read). Expiry times
    are whole unix seconds on both servers, so `expires=1` may end within a few ms of the
    set when ruwsgi checks it on read: 2 keeps the first read meaningful."""
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    c = "shared@" + tcp_addr(node)
    assert op(caller, "update", key="exp", val="soon", expires=2, cache=c) is True
    assert op(caller, "update", key="keep", val="forever", expires=0, cache=c) is True
    assert op(caller, "get", key="exp", cache=c) == b"soon"
    deadline = time.monotonic() + 9
    while op(caller, "get", key="exp", cache=c) is not None:
        assert time.monotonic() < deadline, "the item did not expire"
        time.sleep(0.25)
    assert op(caller, "exists", key="exp", cache=c) is None
    assert op(caller, "get", key="keep", cache=c) == b"forever"
    # once expired, `set` may store the key again
    assert op(caller, "set", key="exp", val="again", cache=c) is True
    assert op(caller, "get", key="exp", cache=c) == b"again"


@pytest.mark.parametrize("caller_kind,node_kind", PAIRS, ids=PAIR_IDS)
def test_remote_math_is_a_plain_update(fleet, caller_kind, node_kind):
    """A remote cache_inc does not add: the client sends an update of the delta as an
    8-byte native integer."""
    caller, node = fleet.caller(caller_kind), fleet.node(node_kind)
    c = "shared@" + tcp_addr(node)
    assert op(caller, "update", key="n", val="whatever", cache=c) is True
    assert op(caller, "inc", key="n", delta=5, cache=c) is True
    assert op(caller, "get", key="n", cache=c) == struct.pack("=q", 5)
    assert op(caller, "inc", key="n", delta=5, cache=c) is True
    assert op(caller, "get", key="n", cache=c) == struct.pack("=q", 5)


@pytest.mark.parametrize("caller_kind", ["ruwsgi", "uwsgi"])
def test_dead_node_gives_none_within_the_socket_timeout(fleet, caller_kind, tmp_path):
    caller = fleet.caller(caller_kind)
    # nothing listens on this port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    for name, params in (("get", {"key": "k"}), ("set", {"key": "k", "val": "v"}),
                         ("exists", {"key": "k"}), ("del", {"key": "k"})):
        t0 = time.monotonic()
        assert op(fleet.caller(caller_kind), name, cache="shared@" + dead, **params) is None
        assert time.monotonic() - t0 < SOCKET_TIMEOUT + 1
    # a node that accepts and never answers: None once the socket timeout has passed
    with SilentNode() as silent:
        t0 = time.monotonic()
        r = ask(caller, op="get", key="k", cache="shared@" + silent.addr)
        took = time.monotonic() - t0
        assert r.value is None
        assert SOCKET_TIMEOUT - 0.5 <= took < SOCKET_TIMEOUT * 2 + 1.5, took
    # a missing unix socket
    assert op(caller, "get", key="k", cache="shared@" + str(tmp_path / "none.sock")) is None


# --------------------------------------------------------------------------- scripted nodes

class SilentNode:
    """Accepts connections, reads, never answers."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def __exit__(self, *exc):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


class KeepingNode:
    """A scripted node answering magic requests the way ruwsgi does: a reply, then the
    connection stays open (and failures, without keep=1, a silent close)."""

    def __init__(self):
        self.items = {}
        self.requests = []

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(10)
        try:
            while True:
                head = read_exact(c, 4)
                if head is None:
                    return
                m1, size, m2 = struct.unpack("<BHB", head)
                d = parse_dict(read_exact(c, size))
                value = read_exact(c, int(d.get(b"size", b"0"))) if d.get(b"cmd") in (
                    b"set", b"update") else b""
                self.requests.append(d)
                cmd, key = d.get(b"cmd"), d.get(b"key")
                if cmd == b"get" and key in self.items:
                    v = self.items[key]
                    c.sendall(magic_reply([(b"status", b"ok"), (b"size", b"%d" % len(v))]) + v)
                elif cmd in (b"set", b"update"):
                    self.items[key] = value
                    c.sendall(magic_reply([(b"status", b"ok")]))
                else:
                    c.close()
                    return
        except OSError:
            return


def read_exact(c, n):
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def parse_dict(block):
    out, pos = {}, 0
    while pos < len(block):
        (kl,) = struct.unpack_from("<H", block, pos)
        k = block[pos + 2:pos + 2 + kl]
        pos += 2 + kl
        (vl,) = struct.unpack_from("<H", block, pos)
        out[k] = block[pos + 2:pos + 2 + vl]
        pos += 2 + vl
    return out


def magic_packet(pairs, value=b""):
    body = uwsgi_vars(pairs)
    return struct.pack("<BHB", 111, len(body), 17) + body + value


def magic_reply(pairs):
    body = uwsgi_vars(pairs)
    return struct.pack("<BHB", 111, len(body), 17) + body


def test_uwsgi_client_against_a_node_that_keeps_the_connection(fleet):
    """uWSGI's client reads exactly one reply and does not wait for the node to close:
    ruwsgi nodes keep the connection after a magic reply."""
    caller = fleet.caller("uwsgi")
    with KeepingNode() as n:
        c = "x@" + n.addr
        r = ask(caller, op="update", key="k", val="v", cache=c)
        assert r.value is True and r.elapsed < 1, (r.value, r.elapsed)
        r = ask(caller, op="get", key="k", cache=c)
        assert r.value == b"v" and r.elapsed < 1, (r.value, r.elapsed)
        assert op(caller, "get", key="missing", cache=c) is None
    # what uWSGI's client sends: cmd, key, cache, and for set/update the size
    assert n.requests[0][b"cmd"] == b"update"
    assert n.requests[0][b"key"] == b"k" and n.requests[0][b"cache"] == b"x"
    assert n.requests[0][b"size"] == b"1"
    assert b"keep" not in n.requests[0]


# --------------------------------------------------------------------------- raw packets

def exchange(addr, data, timeout=3.0):
    """Send `data`, read until the node closes or goes quiet; (bytes, closed)."""
    if addr.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(addr)
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.settimeout(timeout)
    s.sendall(data)
    got, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except socket.timeout:
        pass
    s.close()
    return got, closed


@pytest.mark.parametrize("kind", ["uwsgi", "ruwsgi"])
def test_raw_magic_packets(fleet, kind):
    where = tcp_addr(fleet.node(kind))
    set_ = magic_packet([(b"cmd", b"update"), (b"key", b"foo"), (b"size", b"3")], b"bar")
    got, _ = exchange(where, set_, timeout=1)
    assert got == b"\x6f\x0c\x00\x11\x06\x00status\x02\x00ok"
    # the documented example: a magic GET of `foo` in the default cache
    get = magic_packet([(b"cmd", b"get"), (b"key", b"foo")])
    assert get[:4] == b"\x6f\x14\x00\x11"
    got, _ = exchange(where, get, timeout=1)
    assert got == b"\x6f\x15\x00\x11\x06\x00status\x02\x00ok\x04\x00size\x01\x003bar"
    # a miss, an unknown cache, an unknown command: nothing, connection closed
    for pairs in ([(b"cmd", b"get"), (b"key", b"nope")],
                  [(b"cmd", b"get"), (b"key", b"foo"), (b"cache", b"nosuch")],
                  [(b"cmd", b"frobnicate"), (b"key", b"foo")]):
        assert exchange(where, magic_packet(pairs)) == (b"", True), pairs
    # expiry is reported as an absolute unix time
    p = magic_packet([(b"cmd", b"update"), (b"key", b"e"), (b"size", b"1"),
                      (b"expires", b"100")], b"x")
    exchange(where, p, timeout=1)
    got, _ = exchange(where, magic_packet([(b"cmd", b"get"), (b"key", b"e")]), timeout=1)
    d = parse_dict(got[4:4 + struct.unpack("<H", got[1:3])[0]])
    assert abs(int(d[b"expires"]) - (time.time() + 100)) < 3, d


@pytest.mark.parametrize("kind", ["uwsgi", "ruwsgi"])
def test_raw_simple_commands(fleet, kind):
    where = tcp_addr(fleet.node(kind))
    # 1: array set in the default cache; nothing answered
    arr = struct.pack("<H", 2) + b"k1" + struct.pack("<H", 5) + b"hello"
    assert exchange(where, struct.pack("<BHB", 111, len(arr), 1) + arr) == (b"", True)
    # 0: get by raw key; uWSGI's 4 header bytes are garbage, ruwsgi's are (111, len, 0)
    got, closed = exchange(where, struct.pack("<BHB", 111, 2, 0) + b"k1")
    assert closed and len(got) == 9 and got[4:] == b"hello", got
    if kind == "ruwsgi":
        assert got[:4] == b"\x6f\x05\x00\x00"
    assert exchange(where, struct.pack("<BHB", 111, 4, 0) + b"nope") == (b"", True)
    # 5: streamed get; (111, 0, 1) + value, (111, 0, 0) on a miss (garbage on uWSGI)
    got, closed = exchange(where, struct.pack("<BHB", 111, 2, 5) + b"k1")
    assert closed and got[4:] == b"hello"
    if kind == "ruwsgi":
        assert got[:4] == b"\x6f\x00\x00\x01"
    got, closed = exchange(where, struct.pack("<BHB", 111, 4, 5) + b"nope")
    assert closed and len(got) == 4
    if kind == "ruwsgi":
        assert got == b"\x6f\x00\x00\x00"
    # 2: delete by raw key; nothing answered
    assert exchange(where, struct.pack("<BHB", 111, 2, 2) + b"k1") == (b"", True)
    assert exchange(where, struct.pack("<BHB", 111, 2, 0) + b"k1") == (b"", True)
    # 4 with get= on a miss: an HTTP 404
    body = uwsgi_vars([(b"get", b"nope")])
    got, closed = exchange(where, struct.pack("<BHB", 111, len(body), 4) + body)
    assert closed and got.startswith(b"HTTP/1.0 404 Not Found\r\n"), got
    # 9: not a command: nothing
    assert exchange(where, struct.pack("<BHB", 111, 1, 9) + b"x") == (b"", True)


def test_raw_dump_is_not_served_by_ruwsgi(fleet):
    """modifier2 6 (the full memory image a uWSGI `cache-sync` pulls) is uWSGI-layout
    specific: uWSGI answers (111, len, 7) + {items, blocksize} + the image, ruwsgi nothing."""
    got, closed = exchange(tcp_addr(fleet.node("uwsgi")), struct.pack("<BHB", 111, 6, 6)
                           + b"second")
    assert got[:1] == b"\x6f" and got[3:4] == b"\x07", got[:16]
    d = parse_dict(got[4:4 + struct.unpack("<H", got[1:3])[0]])
    assert d == {b"items": b"100", b"blocksize": b"1000"}, d
    assert exchange(tcp_addr(fleet.node("ruwsgi")), struct.pack("<BHB", 111, 6, 6)
                    + b"second") == (b"", True)


def test_uwsgi_node_closes_after_every_magic_reply(fleet):
    """Measured fact the ruwsgi client relies on: uWSGI closes the connection right after a
    magic reply, so a second request on it gets nothing."""
    where = tcp_addr(fleet.node("uwsgi"))
    host, port = where.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.settimeout(3)
    s.sendall(magic_packet([(b"cmd", b"update"), (b"key", b"c"), (b"size", b"1")], b"1"))
    first = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        first += chunk
    assert first.startswith(b"\x6f\x0c\x00\x11")
    s.close()


def test_ruwsgi_node_keeps_the_connection_with_keep(fleet):
    """With keep=1 (ruwsgi's extension) a ruwsgi node answers failures with status=fail and
    keeps the connection; successes keep it too."""
    where = tcp_addr(fleet.node("ruwsgi"))
    host, port = where.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.settimeout(3)
    s.sendall(magic_packet([(b"cmd", b"get"), (b"key", b"nope"), (b"keep", b"1")]))
    head = read_exact(s, 4)
    assert head is not None and head[0] == 111 and head[3] == 17
    d = parse_dict(read_exact(s, struct.unpack("<H", head[1:3])[0]))
    assert d.get(b"status") != b"ok"
    s.sendall(magic_packet([(b"cmd", b"update"), (b"key", b"kk"), (b"size", b"2"),
                            (b"keep", b"1")], b"ok"))
    assert read_exact(s, 16) == b"\x6f\x0c\x00\x11\x06\x00status\x02\x00ok"
    s.close()
