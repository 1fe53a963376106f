"""Security tests S1, S2, S3, S7, S9, S10 (http-rules.md §4)."""
import json
import os
import stat
import subprocess

import pytest

from helpers import (free_port, local_non_loopback_ip, http_request, raw_exchange, uwsgi_exchange, uwsgi_packet,
                     uwsgi_request_vars, wait_until)


def listening_addrs(port):
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[3] for line in out.splitlines()
            if line.split() and line.split()[3].rsplit(":", 1)[-1] == str(port)]


def test_s2_port_only_binds_loopback(ruwsgi, fault_app):
    port = free_port()
    srv = ruwsgi("--socket", ":%d" % port, "--wsgi-file", fault_app)
    assert srv.uwsgi.addr == "127.0.0.1:%d" % port, srv.listeners
    addrs = listening_addrs(port)
    assert addrs == ["127.0.0.1:%d" % port], "bound to %r, expected loopback only" % addrs
    r = uwsgi_exchange(("127.0.0.1", port), "/")
    assert r.status == 200


def test_s2_http_port_only_binds_loopback(ruwsgi, fault_app):
    port = free_port()
    srv = ruwsgi("--http-socket", ":%d" % port, "--wsgi-file", fault_app)
    addrs = listening_addrs(port)
    assert addrs == ["127.0.0.1:%d" % port], addrs


@pytest.mark.parametrize("opt", ["--socket", "--http-socket"])
def test_s3_unix_socket_mode_0660(ruwsgi, fault_app, tmp_path, opt):
    sock = tmp_path / "s.sock"
    ruwsgi(opt, sock, "--wsgi-file", fault_app)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660, oct(os.stat(sock).st_mode)


def test_s3_chmod_socket_666_written_out(ruwsgi, fault_app, tmp_path):
    sock = tmp_path / "s.sock"
    ruwsgi("--socket", sock, "--chmod-socket=666", "--wsgi-file", fault_app)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666


def test_s1_dynamic_app_vars_ignored(ruwsgi, fault_app, tmp_path):
    marker = tmp_path / "pwned"
    srv = ruwsgi("--socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master")
    extra = [("UWSGI_FILE", "exec://touch %s" % marker), ("UWSGI_SETENV", "RUWSGI_PWNED=1"),
             ("UWSGI_SCRIPT", "os"), ("UWSGI_MODULE", "os"), ("UWSGI_CHDIR", "/")]
    r = uwsgi_exchange(srv.uwsgi.target, "/osenv", query="k=RUWSGI_PWNED", extra=extra)
    assert r.status == 200 and r.body == b"<unset>", r
    r = uwsgi_exchange(srv.uwsgi.target, "/osenv", query="k=RUWSGI_PWNED")
    assert r.body == b"<unset>", r
    assert not marker.exists()


def test_s7_http_cannot_spoof_remote_addr(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app)
    r = raw_exchange(srv.addr, b"GET /env HTTP/1.1\r\nHost: x\r\nRemote-Addr: 1.2.3.4\r\n"
                               b"REMOTE_ADDR: 1.2.3.4\r\nX-Forwarded-For: 1.2.3.4\r\n"
                               b"X-Real-IP: 1.2.3.4\r\nConnection: close\r\n\r\n")
    assert r.status == 200, r
    env = json.loads(r.body)
    assert env["REMOTE_ADDR"] == "127.0.0.1", env
    assert "HTTP_REMOTE_ADDR" not in env["HTTP"] or env["HTTP"]["HTTP_REMOTE_ADDR"] == "1.2.3.4"


def test_s7_trusted_loopback_peer_may_set_remote_addr(ruwsgi, fault_app):
    """Loopback is a trusted uwsgi peer by default (nginx on the same host)."""
    srv = ruwsgi("--socket", "127.0.0.1:0", "--wsgi-file", fault_app)
    r = uwsgi_exchange(srv.uwsgi.target, "/env", remote_addr="1.2.3.4")
    assert json.loads(r.body)["REMOTE_ADDR"] == "1.2.3.4"


def test_s7_untrusted_peer_remote_addr_replaced(ruwsgi, fault_app):
    """A peer that is neither loopback nor a unix socket nor listed in uwsgi-trusted-peers
    cannot pose as another client: REMOTE_ADDR is the real peer address."""
    ip = local_non_loopback_ip()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address to connect from")
    srv = ruwsgi("--socket", "0.0.0.0:0", "--wsgi-file", fault_app)
    r = uwsgi_exchange((ip, srv.uwsgi.port), "/env", remote_addr="1.2.3.4")
    assert json.loads(r.body)["REMOTE_ADDR"] == ip
    # Listed in uwsgi-trusted-peers, the same peer is believed.
    srv2 = ruwsgi("--socket", "0.0.0.0:0", "--wsgi-file", fault_app,
                  "--uwsgi-trusted-peers", ip)
    r = uwsgi_exchange((ip, srv2.uwsgi.port), "/env", remote_addr="1.2.3.4")
    assert json.loads(r.body)["REMOTE_ADDR"] == "1.2.3.4"


@pytest.mark.parametrize("path", ["/badheader", "/badheadername", "/badstatus", "/nulheader"])
@pytest.mark.parametrize("proto", ["http", "uwsgi"])
def test_s9_response_splitting_is_500(ruwsgi, fault_app, path, proto):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0",
                 "--wsgi-file", fault_app)
    if proto == "http":
        r = http_request(srv.http.target, "GET", path)
    else:
        r = uwsgi_exchange(srv.uwsgi.target, path)
    assert r.status == 500, r
    assert b"evil" not in r.data and b"X-Injected" not in r.data and b"should not be sent" not in r.data
    wait_until(lambda: path in srv.log_text() or "500" in srv.log_text(), 5, what="a log line")


def worker_rss_kb(srv):
    total = 0
    for pid in srv.children():
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def test_s10_bad_packets_clean_close(ruwsgi, fault_app):
    srv = ruwsgi("--socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--master",
                 "--processes", "1")
    workers = set(srv.wait_children(1))
    target = srv.uwsgi.target
    base = uwsgi_packet(uwsgi_request_vars("/"))[4:]
    many = b"".join(b"\x01\x00k\x00\x00" for _ in range(13000))   # 13000 vars of 5 bytes
    bad = {
        "datasize>buffer": b"\x00\xff\xff\x00" + b"\x00" * 65535,
        "keylen-past-end": b"\x00" + (len(base) + 5).to_bytes(2, "little") + b"\x00" + base + b"\xff\x00abc",
        "zero-length-key": uwsgi_packet(uwsgi_request_vars("/") + [("", "v")]),
        "65535-vars": b"\x00" + len(many).to_bytes(2, "little") + b"\x00" + many,
    }
    rss0 = worker_rss_kb(srv)
    for _ in range(3):
        for name, pkt in bad.items():
            r = raw_exchange(target, pkt, timeout=5)
            assert r.closed and r.data == b"", (name, r)
    assert set(srv.children()) == workers, "the worker died"
    r = uwsgi_exchange(target, "/")
    assert r.status == 200
    grown = worker_rss_kb(srv) - rss0
    assert grown < 4096, "workers' RSS grew by %d KiB" % grown
    assert "DAMN" not in srv.log_text()
