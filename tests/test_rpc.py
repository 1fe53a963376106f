"""RPC (modifier1 173) end to end: the uwsgi module's RPC API in a worker, in a mule, with
preload and lazy-apps, and the 173 packets a worker answers on its uwsgi socket.

Interoperability with real uWSGI and nginx lives in test_rpc_interop.py and
test_rpc_nginx.py.
"""
import socket
import struct
import threading
import time

import pytest

from helpers import APPS, connect, http_request, raw_exchange, wait_until

APP = APPS / "rpcapp.py"


def call_packet(name, *args, modifier2=0):
    body = b"".join(struct.pack("<H", len(x)) + x for x in (name,) + args)
    return struct.pack("<BHB", 173, len(body), modifier2) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += got
    return buf


def read_reply(s):
    """One standard reply: (modifier2, result bytes)."""
    m1, size, m2 = struct.unpack("<BHB", recv_exact(s, 4))
    assert m1 == 173, m1
    if m2 == 5:
        d = recv_exact(s, size)
        klen = struct.unpack("<H", d[:2])[0]
        assert d[2:2 + klen] == b"CONTENT_LENGTH"
        vlen = struct.unpack("<H", d[2 + klen:4 + klen])[0]
        assert 4 + klen + vlen == size
        size = int(d[4 + klen:4 + klen + vlen])
    return m2, recv_exact(s, size)


def get(srv, path, timeout=10):
    r = http_request(srv.http.target, "GET", path, timeout=timeout)
    assert r.status == 200, r
    return r.body


@pytest.fixture
def rsrv(ruwsgi):
    # two workers: /check calls this instance's own uwsgi socket from one of them
    return ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file",
                  APP, "--master", "--processes", "2")


def test_python_api_types_and_errors(rsrv):
    start = rsrv.log_len()
    body = get(rsrv, "/check?127.0.0.1:%d" % rsrv.uwsgi.port)
    assert body == b"ok", body.decode()
    # failures are logged: a non-bytes result, an exception with its traceback, a
    # missing function called over the socket
    rsrv.wait_log(r"RPC function 'returns_str' failed: returned str instead of bytes",
                  start=start)
    rsrv.wait_log(r"RPC function 'returns_none' failed: returned NoneType instead of bytes",
                  start=start)
    rsrv.wait_log(r"RuntimeError: rpc handler failure", start=start)
    rsrv.wait_log(r"RPC function 'missing' not found \(called by 127\.0\.0\.1:\d+\)",
                  start=start)
    rsrv.wait_log(r"cannot register RPC function 'n{256}': RPC function name of 256 bytes",
                  start=start)


def test_rpc_max_bounds_the_table(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "1", "--rpc-max", "12")
    # the app registered 10 at import time
    assert get(srv, "/fill") == b"2 unable to register rpc function"
    srv.wait_log(r"the RPC table is full \(12 functions, see rpc-max\)")


def test_standard_calls_on_one_kept_connection(rsrv):
    with connect(rsrv.uwsgi.target) as s:
        for i in range(5):
            arg = b"arg%d" % i
            s.sendall(call_packet(b"hello", arg, b"z"))
            assert read_reply(s) == (0, b"hello " + arg + b" z")
        # a large reply uses the CONTENT_LENGTH form, on the same connection
        s.sendall(call_packet(b"big", b"70000"))
        assert read_reply(s) == (5, b"x" * 70000)
        s.sendall(call_packet(b"big", b"65535"))
        assert read_reply(s) == (0, b"x" * 65535)
        # no result: an empty reply, and the connection stays usable
        for name in (b"missing", b"returns_str", b"raises"):
            s.sendall(call_packet(name))
            assert read_reply(s) == (0, b"")
        # empty arguments are dropped by the server (nginx pads with them)
        s.sendall(call_packet(b"echo_args", b"", b"x", b"", b"y"))
        assert read_reply(s) == (0, b"x|y")
        # several calls written at once are answered in order
        s.sendall(call_packet(b"hello", b"1") + call_packet(b"hello", b"2"))
        assert read_reply(s) == (0, b"hello 1")
        assert read_reply(s) == (0, b"hello 2")


def test_raw_mode_writes_the_result_alone_and_closes(rsrv):
    r = raw_exchange(rsrv.uwsgi.target, call_packet(b"raw_http", modifier2=1))
    assert r.closed and r.status == 200 and r.body == b"raw", r
    # modifiers without a meaning of their own (XML-RPC 3, JSON-RPC 4, ...) act as raw
    for m2 in (3, 4, 9):
        r = raw_exchange(rsrv.uwsgi.target, call_packet(b"hello", b"w", modifier2=m2))
        assert r.closed and r.data == b"hello w", (m2, r)
    r = raw_exchange(rsrv.uwsgi.target, call_packet(b"missing", modifier2=1))
    assert r.closed and r.data == b"", r


def vars_packet(pairs, modifier1=173, modifier2=2):
    body = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                    for k, v in pairs)
    return struct.pack("<BHB", modifier1, len(body), modifier2) + body


def test_http_bridge(rsrv):
    t = rsrv.uwsgi.target
    r = raw_exchange(t, vars_packet([(b"REQUEST_METHOD", b"GET"),
                                     (b"PATH_INFO", b"/hello/a/b")]))
    assert r.closed and r.status == 200 and r.body == b"hello a b", r
    assert r.header("Content-Type") == b"application/binary"
    assert r.header("Content-Length") == b"9"
    r = raw_exchange(t, vars_packet([(b"PATH_INFO", b"/hello/x"),
                                     (b"HTTP_ACCEPT", b"text/plain")]))
    assert r.header("Content-Type") == b"text/plain", r
    assert raw_exchange(t, vars_packet([(b"PATH_INFO", b"/missing")])).status == 404
    assert raw_exchange(t, vars_packet([(b"PATH_INFO", b"/returns_str")])).status == 404
    assert raw_exchange(t, vars_packet([(b"PATH_INFO", b"/")])).status == 500
    assert raw_exchange(t, vars_packet([(b"REQUEST_METHOD", b"GET")])).status == 500


@pytest.mark.parametrize("packet", [
    struct.pack("<BHB", 173, 0, 0),                              # no function name
    struct.pack("<BHB", 173, 3, 0) + b"\x09\x00a",               # item overruns the body
    struct.pack("<BHB", 173, 4, 0) + b"\x01\x00ab",              # trailing byte
    struct.pack("<BHB", 173, 3, 2) + b"\x00\x00a",               # bad vars block (HTTP)
    struct.pack("<BHB", 173, 2, 0) + b"\x00\x00",                # only an empty item
], ids=["empty", "overrun", "trailing", "bad-vars", "only-empty"])
def test_malformed_packets_close_and_the_worker_survives(rsrv, packet):
    workers = set(rsrv.wait_children(2))
    start = rsrv.log_len()
    r = raw_exchange(rsrv.uwsgi.target, packet)
    assert r.closed and r.data == b"", r
    rsrv.wait_log(r"invalid RPC( \(HTTP\))? packet from 127\.0\.0\.1:\d+", start=start)
    assert get(rsrv, "/") == b"ok"
    assert set(rsrv.children()) == workers, "a worker was restarted"
    assert "DAMN" not in rsrv.log_text()


def test_oversized_packet_is_refused(rsrv):
    # larger than buffer-size (4096): refused from the header, as every uwsgi packet
    big = b"y" * 5000
    r = raw_exchange(rsrv.uwsgi.target, call_packet(b"hello", big))
    assert r.closed and r.data == b"", r
    rsrv.wait_log(r"invalid request block size: 5009 \(max 4096\)")
    with connect(rsrv.uwsgi.target) as s:
        s.sendall(call_packet(b"hello", b"ok"))
        assert read_reply(s) == (0, b"hello ok")


def concurrent(fn, n):
    out = [None] * n

    def run(i):
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_preloaded_functions_answer_in_every_worker(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file",
                 APP, "--master", "--processes", "2")

    def one():
        with connect(srv.uwsgi.target, timeout=10) as s:
            s.sendall(call_packet(b"slow_whoami"))
            return read_reply(s)[1]

    # two calls at once that each hold a worker for 0.3 s: both workers answer
    seen = set()
    for _ in range(5):
        seen.update(concurrent(one, 2))
        if seen == {b"1", b"2"}:
            break
    assert seen == {b"1", b"2"}


def test_lazy_apps_registrations_stay_in_their_worker(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "2", "--lazy-apps")
    owner = int(get(srv, "/register?late_fn"))
    lists = {}
    for _ in range(5):
        for body in concurrent(lambda: get(srv, "/list?0.3"), 2):
            wid, names = eval(body)
            lists[wid] = names
        if len(lists) == 2:
            break
    assert set(lists) == {1, 2}, lists
    other = 3 - owner
    assert b"late_fn" in lists[owner] and b"late_fn" not in lists[other], lists
    # each worker imported the app itself, so both have its functions
    assert all(b"hello" in names for names in lists.values())


def test_a_mule_calls_but_cannot_register(ruwsgi, tmp_path):
    out = tmp_path / "mule.out"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "1", "--mule", APPS / "rpcmule.py",
                 env={"RPC_MULE_OUT": str(out)})
    wait_until(out.exists, 15, what="the mule's report")
    assert out.read_text().splitlines() == [
        "b'hello mule'", "ValueError: unable to register rpc function"]
    srv.wait_log(r"cannot register RPC function 'from_mule': only the master and the "
                 r"workers can register RPC functions")


def test_dead_and_slow_nodes_give_none_within_the_socket_timeout(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                 "--processes", "1", "--socket-timeout", "1")
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
    r, took = eval(get(srv, "/remote?127.0.0.1:%d&hello" % port))
    assert r is None and took < 1.0
    # a node that accepts and never answers
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(8)
    try:
        r, took = eval(get(srv, "/remote?127.0.0.1:%d&hello&x" % slow.getsockname()[1]))
        assert r is None and 0.9 <= took < 2.5, took
    finally:
        slow.close()
    srv.wait_log(r"RPC: request to 127\.0\.0\.1:\d+ timed out")
    # the worker goes on serving
    assert get(srv, "/") == b"ok"


def test_remote_calls_to_itself_over_a_unix_socket(ruwsgi, tmp_path):
    sock = tmp_path / "rpc.sock"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", sock, "--wsgi-file", APP,
                 "--master", "--processes", "2")
    for _ in range(3):
        r, _ = eval(get(srv, "/remote?%s&hello&u" % sock))
        assert r == b"hello u"


def test_uwsgidecorators_rpc(ruwsgi):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file",
                 APPS / "rpcdecorated.py", "--master", "--processes", "1", site=True)
    assert get(srv, "/") == b"decorated:x,y"
    with connect(srv.uwsgi.target) as s:
        s.sendall(call_packet(b"decorated", b"remote"))
        assert read_reply(s) == (0, b"decorated:remote")


def test_connections_kept_before_fork_are_not_shared(ruwsgi):
    target = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file",
                    APP, "--master", "--processes", "2", name="target")
    node = "127.0.0.1:%d" % target.uwsgi.port
    caller = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", APP, "--master",
                    "--processes", "2", env={"RPC_IMPORT_NODE": node}, name="caller")
    assert get(caller, "/import-call") == b"b'hello import'"

    def many():
        out = []
        for i in range(50):
            r, _ = eval(get(caller, "/remote?%s&echo_args&%d&x" % (node, i)))
            out.append(r == b"%d|x" % i)
        return all(out)

    # both workers call at once, each on connections of its own
    assert concurrent(many, 4) == [True] * 4
