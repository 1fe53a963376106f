"""Static files (`static-map`, `static-map2`, `static-check` and their companions): served
by the worker before the app, over HTTP sockets and the uwsgi protocol (behind nginx), with
conditional requests, ranges, HEAD, gzip siblings, index files, expiry headers, MIME types,
offload threads, and no way out of the mapped directory (rule S8)."""
import calendar
import email.utils
import gzip
import hashlib
import os
import socket
import threading
import time

import pytest

from helpers import connect, http_request, raw_exchange, read_response, uwsgi_exchange

APP = b"""\
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'APP ' + environ['PATH_INFO'].encode('latin-1')]
"""

SECRET = b"TOP-SECRET-CONTENT"


@pytest.fixture
def tree(tmp_path):
    """A site: srv/static (mapped), srv/static-private and srv/secret.txt (not mapped),
    srv/safe (reachable through a symlink only with static-safe)."""
    srv = tmp_path / "srv"
    st = srv / "static"
    (st / "sub").mkdir(parents=True)
    (st / "empty").mkdir()
    (srv / "static-private").mkdir()
    (srv / "safe").mkdir()
    (st / "a.txt").write_bytes(b"hello static\n")
    (st / "style.css").write_bytes(b"body { color: red }\n")
    (st / "page.html").write_bytes(b"<p>page</p>\n")
    (st / "noext").write_bytes(b"raw\n")
    (st / "thing.zork").write_bytes(b"zork\n")
    (st / "skip.php").write_bytes(b"<?php ?>\n")
    (st / "sub" / "index.html").write_bytes(b"<h1>index</h1>\n")
    js = b"console.log('x');\n" * 50
    (st / "app.js").write_bytes(js)
    (st / "app.js.gz").write_bytes(gzip.compress(js))
    (st / "only.css").write_bytes(b"a{}\n" * 20)
    (st / "only.css.gz").write_bytes(gzip.compress(b"a{}\n" * 20))
    (st / "data.bin").write_bytes(bytes(range(256)) * 40)
    (srv / "secret.txt").write_bytes(SECRET)
    (srv / "static-private" / "secret.txt").write_bytes(SECRET)
    (srv / "safe" / "ok.txt").write_bytes(b"safe file\n")
    os.symlink("../secret.txt", st / "link-out")
    os.symlink(str(srv / "static-private"), st / "dir-out")
    os.symlink("../safe/ok.txt", st / "link-safe")
    os.symlink("a.txt", st / "link-in")
    os.symlink(str(st / "a.txt"), st / "abs-in")
    big = os.urandom(3 << 20)
    (st / "big.bin").write_bytes(big)
    (tmp_path / "mime.types").write_text("# test types\napplication/x-zork\tzork\n")
    (tmp_path / "app.py").write_bytes(APP)
    return tmp_path


def start(ruwsgi, tree, *extra, sock=("--http-socket", "127.0.0.1:0")):
    return ruwsgi(*sock, "--wsgi-file", tree / "app.py", "--processes", "1",
                  "--static-map", "/static=%s" % (tree / "srv" / "static"), *extra)


def get(srv, path, headers=None, method="GET"):
    return http_request(srv.addr, method=method, path=path, headers=headers)


def test_static_map_serves_files_with_validators(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    r = get(srv, "/static/a.txt")
    assert r.status == 200, r
    assert r.body == b"hello static\n"
    assert r.header("Content-Type") == b"text/plain"
    assert r.header("Content-Length") == b"13"
    assert r.header("Accept-Ranges") == b"bytes"
    mtime = os.stat(tree / "srv" / "static" / "a.txt").st_mtime
    lm = r.header("Last-Modified").decode()
    assert calendar.timegm(email.utils.parsedate(lm)) == int(mtime)
    etag = r.header("ETag")
    assert etag.startswith(b'"') and etag.endswith(b'"') and not etag.startswith(b"W/")
    # The request log has the line, as for app requests.
    srv.wait_log(r"GET /static/a\.txt => generated 13 bytes .*\(HTTP/1\.1 200\)")


def test_missing_files_and_other_methods_go_to_the_app(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    assert get(srv, "/static/nope.txt").body == b"APP /static/nope.txt"
    assert get(srv, "/static/empty/").body == b"APP /static/empty/"
    assert get(srv, "/static/a.txt", method="POST").body == b"APP /static/a.txt"
    assert get(srv, "/other").body == b"APP /other"
    # A prefix match must end at a path segment.
    assert get(srv, "/statica.txt").body == b"APP /statica.txt"


def read_head(s, timeout=5.0):
    """Read a response head (a HEAD answer) and check that no body bytes follow."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        assert got, buf
        buf += got
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert rest == b""
    s.settimeout(0.2)
    try:
        assert s.recv(1) == b"", "bytes after a HEAD response"
    except socket.timeout:
        pass
    lines = head.split(b"\r\n")
    headers = {k.strip().lower().decode(): v.strip().decode()
               for k, _, v in (line.partition(b":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers


def test_head_sends_headers_only(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    s = connect(srv.addr)
    s.sendall(b"HEAD /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers = read_head(s)
    assert status == 200 and headers["content-length"] == "13"
    assert headers["content-type"] == "text/plain" and "etag" in headers
    s.sendall(b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _ = read_response(s)
    assert status == 200 and body == b"hello static\n"
    s.close()


def test_conditional_requests(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    first = get(srv, "/static/a.txt")
    etag, lm = first.header("ETag").decode(), first.header("Last-Modified").decode()
    r = get(srv, "/static/a.txt", {"If-Modified-Since": lm})
    assert r.status == 304 and r.body == b""
    assert r.header("ETag").decode() == etag and r.header("Content-Length") is None
    r = get(srv, "/static/a.txt", {"If-Modified-Since": "Thu, 01 Jan 1998 00:00:00 GMT"})
    assert r.status == 200 and r.body == b"hello static\n"
    r = get(srv, "/static/a.txt", {"If-Modified-Since": "not a date"})
    assert r.status == 200
    r = get(srv, "/static/a.txt", {"If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    r = get(srv, "/static/a.txt", {"If-None-Match": '"other", %s' % etag})
    assert r.status == 304
    r = get(srv, "/static/a.txt", {"If-None-Match": "*"})
    assert r.status == 304
    # If-None-Match wins over If-Modified-Since.
    r = get(srv, "/static/a.txt", {"If-None-Match": '"other"', "If-Modified-Since": lm})
    assert r.status == 200
    # A changed file gets a new ETag.
    p = tree / "srv" / "static" / "a.txt"
    p.write_bytes(b"hello again\n")
    os.utime(p, (time.time() + 5, time.time() + 5))
    r = get(srv, "/static/a.txt", {"If-None-Match": etag})
    assert r.status == 200 and r.body == b"hello again\n"
    assert r.header("ETag").decode() != etag


def test_ranges(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    data = (tree / "srv" / "static" / "data.bin").read_bytes()
    size = len(data)
    r = get(srv, "/static/data.bin", {"Range": "bytes=0-9"})
    assert r.status == 206 and r.body == data[:10]
    assert r.header("Content-Range") == b"bytes 0-9/%d" % size
    assert r.header("Content-Length") == b"10"
    r = get(srv, "/static/data.bin", {"Range": "bytes=-5"})
    assert r.status == 206 and r.body == data[-5:]
    r = get(srv, "/static/data.bin", {"Range": "bytes=10000-"})
    assert r.status == 206 and r.body == data[10000:]
    r = get(srv, "/static/data.bin", {"Range": "bytes=100-99999999"})
    assert r.status == 206 and r.body == data[100:]
    r = get(srv, "/static/data.bin", {"Range": "bytes=%d-" % size})
    assert r.status == 416 and r.header("Content-Range") == b"bytes */%d" % size
    # Several ranges: the whole file.
    r = get(srv, "/static/data.bin", {"Range": "bytes=0-1,5-6"})
    assert r.status == 200 and r.body == data
    # Malformed: ignored.
    r = get(srv, "/static/data.bin", {"Range": "bytes=x-y"})
    assert r.status == 200 and r.body == data
    # If-Range with a stale validator: the whole file; with the current ETag: the range.
    etag = r.header("ETag").decode()
    r = get(srv, "/static/data.bin", {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status == 200 and r.body == data
    r = get(srv, "/static/data.bin", {"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and r.body == data[:10]


def test_keep_alive_after_static_responses(ruwsgi, tree):
    srv = start(ruwsgi, tree)
    s = connect(srv.addr)
    etag = None
    for req, want in [
        (b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (None, 304),
        (b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"HEAD /static/data.bin HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        (b"GET /static/data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1-3\r\n\r\n", 206),
        (b"GET /static/data.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=99999-\r\n\r\n", 416),
        (b"GET /static/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n", 403),
        (b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ]:
        if req is None:
            req = b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n" % etag
        s.sendall(req)
        if req.startswith(b"HEAD"):
            status, headers = read_head(s)
        else:
            status, headers, body, _ = read_response(s)
        assert status == want, (req, status, headers)
        assert "close" not in headers.get("connection", "")
        etag = etag or headers["etag"].encode()
    s.close()


def test_index_skip_ext_and_mime_types(ruwsgi, tree):
    srv = start(ruwsgi, tree, "--static-index", "index.html", "--static-skip-ext", ".php",
                "--mimefile", tree / "mime.types")
    for path in ("/static/sub/", "/static/sub"):
        r = get(srv, path)
        assert r.status == 200 and r.body == b"<h1>index</h1>\n", path
        assert r.header("Content-Type") == b"text/html"
    assert get(srv, "/static/empty/").body == b"APP /static/empty/"
    assert get(srv, "/static/skip.php").body == b"APP /static/skip.php"
    types = {
        "/static/style.css": b"text/css",
        "/static/page.html": b"text/html",
        "/static/app.js": b"text/javascript",
        "/static/noext": b"application/octet-stream",
        "/static/thing.zork": b"application/x-zork",
    }
    for path, ctype in types.items():
        assert get(srv, path).header("Content-Type") == ctype, path


def test_expires_rules(ruwsgi, tree):
    srv = start(ruwsgi, tree, "--static-expires-type", "text/css=3600",
                "--static-expires-uri", r"\.js$ 60",
                "--static-expires", r"page\.html$ 120")
    for path, secs in [("/static/style.css", 3600), ("/static/app.js", 60),
                       ("/static/page.html", 120)]:
        r = get(srv, path)
        assert r.header("Cache-Control") == b"max-age=%d" % secs, path
        expires = calendar.timegm(email.utils.parsedate(r.header("Expires").decode()))
        assert abs(expires - (time.time() + secs)) < 10, path
    r = get(srv, "/static/a.txt")
    assert r.header("Expires") is None and r.header("Cache-Control") is None


def test_gzip_siblings(ruwsgi, tree):
    st = tree / "srv" / "static"
    srv = start(ruwsgi, tree, "--static-gzip", r"\.js$")
    r = get(srv, "/static/app.js", {"Accept-Encoding": "gzip, deflate"})
    assert r.status == 200 and r.header("Content-Encoding") == b"gzip"
    assert r.header("Vary") == b"Accept-Encoding"
    assert r.header("Content-Type") == b"text/javascript"
    assert r.body == (st / "app.js.gz").read_bytes()
    assert gzip.decompress(r.body) == (st / "app.js").read_bytes()
    r = get(srv, "/static/app.js")
    assert r.header("Content-Encoding") is None and r.body == (st / "app.js").read_bytes()
    assert r.header("Vary") == b"Accept-Encoding"
    r = get(srv, "/static/app.js", {"Accept-Encoding": "gzip;q=0"})
    assert r.header("Content-Encoding") is None
    # Not matched by the regex: never the .gz.
    r = get(srv, "/static/only.css", {"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") is None and r.header("Vary") is None

    srv2 = start(ruwsgi, tree, "--static-gzip-all")
    r = get(srv2, "/static/only.css", {"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") == b"gzip"
    assert r.body == (st / "only.css.gz").read_bytes()
    # No .gz sibling: the file itself.
    r = get(srv2, "/static/a.txt", {"Accept-Encoding": "gzip"})
    assert r.header("Content-Encoding") is None and r.body == b"hello static\n"


TRAVERSALS = [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/sub/../../secret.txt",
    "/static/..\\secret.txt",
    "/static/..%5csecret.txt",
    "/static/a.txt%00",
    "/static/a.txt%00.css",
    "/static/../static-private/secret.txt",
    "/static/%2e%2e/static-private/secret.txt",
    "/static/link-out",
    "/static/dir-out/secret.txt",
    "/static/link-safe",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused(ruwsgi, tree, path):
    srv = start(ruwsgi, tree)
    r = raw_exchange(srv.addr, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     % path.encode())
    assert r.status in (400, 403, 404), r
    assert SECRET not in r.data and b"safe file" not in r.data


def test_traversal_cases_that_reach_the_app_reveal_nothing(ruwsgi, tree):
    # A sibling directory sharing the mapped directory's prefix is not under it, and
    # doubly encoded dots are a literal file name.
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", tree / "app.py",
                 "--static-map", "/s=%s" % (tree / "srv" / "static"),
                 "--static-map", "/static-private=%s" % (tree / "srv" / "empty-nothing"))
    for path in ["/static-private/secret.txt", "/s-private/secret.txt",
                 "/s/%252e%252e/secret.txt", "/s/..%252fsecret.txt"]:
        r = get(srv, path)
        assert SECRET not in r.data, path
        assert r.status in (200, 403, 404), path


def test_symlinks_inside_and_static_safe(ruwsgi, tree):
    srv = start(ruwsgi, tree, "--static-safe", tree / "srv" / "safe")
    assert get(srv, "/static/link-in").body == b"hello static\n"
    assert get(srv, "/static/abs-in").body == b"hello static\n"
    assert get(srv, "/static/link-safe").body == b"safe file\n"
    # static-safe allows only that directory.
    assert get(srv, "/static/link-out").status == 403
    assert get(srv, "/static/dir-out/secret.txt").status == 403


def test_static_map2_check_static_and_file_maps(ruwsgi, tree):
    srv_dir = tree / "srv"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", tree / "app.py",
                 "--static-map2", "/static=%s" % srv_dir,
                 "--static-map", "/favicon.ico=%s" % (srv_dir / "static" / "noext"),
                 "--check-static", srv_dir / "safe")
    assert get(srv, "/static/a.txt").body == b"hello static\n"
    assert get(srv, "/favicon.ico").body == b"raw\n"
    assert get(srv, "/favicon.ico/x").body == b"APP /favicon.ico/x"
    assert get(srv, "/ok.txt").body == b"safe file\n"
    assert get(srv, "/nothing").body == b"APP /nothing"
    assert get(srv, "/../secret.txt").status == 403
    # static-check spelled the other way.
    srv2 = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", tree / "app.py",
                  "--static-check", srv_dir / "static")
    assert get(srv2, "/a.txt").body == b"hello static\n"


def test_first_existing_map_wins(ruwsgi, tree):
    other = tree / "other"
    other.mkdir()
    (other / "a.txt").write_bytes(b"other a\n")
    (other / "b.txt").write_bytes(b"other b\n")
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", tree / "app.py",
                 "--static-map", "/static=%s" % (tree / "srv" / "static"),
                 "--static-map", "/static=%s" % other)
    assert get(srv, "/static/a.txt").body == b"hello static\n"
    assert get(srv, "/static/b.txt").body == b"other b\n"


def test_behind_nginx_uwsgi_pass(ruwsgi, tree, nginx):
    srv = start(ruwsgi, tree, sock=("--socket", "127.0.0.1:0"))
    ng = nginx("127.0.0.1:%d" % srv.uwsgi.port)
    r = http_request(ng.addr, path="/static/a.txt")
    assert r.status == 200 and r.body == b"hello static\n", r
    assert r.header("Content-Type") == b"text/plain"
    etag = r.header("ETag").decode()
    r = http_request(ng.addr, path="/static/a.txt", headers={"If-None-Match": etag})
    assert r.status == 304
    r = http_request(ng.addr, path="/static/data.bin", headers={"Range": "bytes=2-5"})
    assert r.status == 206 and r.body == bytes([2, 3, 4, 5])
    r = http_request(ng.addr, path="/static/a.txt", method="HEAD")
    assert r.status == 200 and r.body == b""
    assert http_request(ng.addr, path="/static/nope").body == b"APP /static/nope"
    big = (tree / "srv" / "static" / "big.bin").read_bytes()
    r = http_request(ng.addr, path="/static/big.bin", timeout=20)
    assert r.status == 200 and hashlib.sha256(r.body).digest() == hashlib.sha256(big).digest()
    for path in ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/link-out"]:
        r = raw_exchange(ng.addr, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         % path.encode())
        assert SECRET not in r.data, path
    # A peer sending a raw uwsgi packet with a traversal path gets 403.
    r = uwsgi_exchange(("127.0.0.1", srv.uwsgi.port), path="/static/../secret.txt")
    assert r.status == 403 and SECRET not in r.data
    r = uwsgi_exchange(("127.0.0.1", srv.uwsgi.port), path="/static/a.txt")
    assert r.status == 200 and r.body == b"hello static\n"


def _download(addr, path, out, i):
    r = http_request(addr, path=path, timeout=30)
    out[i] = r


def test_offload_threads(ruwsgi, tree):
    srv = start(ruwsgi, tree, "--offload-threads", "2", "--socket-timeout", "20")
    big = (tree / "srv" / "static" / "big.bin").read_bytes()
    # Slow readers of a big file do not hold the core: a small request is answered at once.
    slow = []
    for _ in range(3):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(30)
        s.connect(srv.addr)
        s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.append(s)
    time.sleep(0.3)
    t0 = time.monotonic()
    r = get(srv, "/static/a.txt")
    assert r.body == b"hello static\n"
    r = get(srv, "/app")
    assert r.body == b"APP /app"
    assert time.monotonic() - t0 < 2.0
    for s in slow:
        status, headers, body, _ = read_response(s, timeout=30)
        assert status == 200 and headers["connection"] == "close"
        assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
        # The offload thread closes the connection once the body is sent.
        assert s.recv(10) == b""
        s.close()
    # Concurrent full downloads and ranges of the big file.
    out = [None] * 4
    threads = [threading.Thread(target=_download, args=(srv.addr, "/static/big.bin", out, i))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    for r in out:
        assert r is not None and r.status == 200 and r.body == big
    r = get(srv, "/static/big.bin", {"Range": "bytes=1000000-1999999"})
    assert r.status == 206 and r.body == big[1000000:2000000]
    # Small files and HEAD stay on the core, and the connection stays open.
    s = connect(srv.addr)
    for req in (b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                b"HEAD /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"):
        s.sendall(req)
        if req.startswith(b"HEAD"):
            status, headers = read_head(s)
            assert headers["content-length"] == str(len(big))
        else:
            status, headers, body, _ = read_response(s)
        assert status == 200 and "close" not in headers.get("connection", "")
    s.close()
    assert "cannot start offload" not in srv.log_text()


def test_bad_option_values_stop_startup(ruwsgi, tree):
    for args in (["--static-map", "/static"], ["--static-expires", "(broken 10"],
                 ["--static-expires-type", "text/css"], ["--static-gzip", "["]):
        srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", tree / "app.py", *args,
                     ready=False)
        assert srv.proc.wait(timeout=20) == 1, args
        assert args[0].lstrip("-") in srv.log_text(), srv.log_text()
