"""nginx calling RPC functions (modifier1 173) on a server's uwsgi-protocol socket.

Two nginx location styles are used:

* `uwsgi_modifier1 173; uwsgi_modifier2 2;` with the standard uwsgi_params: the HTTP bridge,
  `GET /function/arg1/arg2` answers with the function's result as the body;
* `uwsgi_modifier1 173; uwsgi_modifier2 1;` without uwsgi_params: the `uwsgi_param` lines
  *are* the call (the array: function name, argument, ...), and the function returns a whole
  HTTP response that nginx relays.

Each test runs against ruwsgi and, as the reference, against real uWSGI, over TCP and over a
unix socket. The functions are those of tests/apps/rpc_node.py.
"""
import pytest

import helpers
from helpers import APPS, Nginx, http_request, start_uwsgi

APP = APPS / "rpc_node.py"
KINDS = ("uwsgi", "ruwsgi")
TRANSPORTS = ("tcp", "unix")


def pattern(n):
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


def raw_location(path, params, headers=False):
    lines = ["        location = %s {" % path,
             "            uwsgi_modifier1 173;",
             "            uwsgi_modifier2 1;"]
    if not headers:
        # otherwise nginx appends every request header as two more items (HTTP_HOST, value)
        lines.append("            uwsgi_pass_request_headers off;")
    lines += ["            uwsgi_param %s %s;" % kv for kv in params]
    lines += ["            uwsgi_pass {upstream};", "        }"]
    return "\n".join(lines) + "\n"


LOCATIONS = """\
        location / {
            include {params};
            uwsgi_modifier1 173;
            uwsgi_modifier2 2;
            uwsgi_pass {upstream};
        }
        location /app/ {
            include {params};
            uwsgi_pass {upstream};
        }
""" + "".join([
    raw_location("/raw/one", [("raw_http", "world")]),
    # the empty value pads the array: it is skipped, so the call is raw_http(b"a", b"b")
    raw_location("/raw/padded", [("raw_http", '""'), ("a", "b")]),
    raw_location("/raw/query", [("raw_http", "$arg_who"), ("x", "y")]),
    raw_location("/raw/unknown", [("nope", "x")]),
    raw_location("/raw/headers", [("raw_http", "world")], headers=True),
    raw_location("/raw/trailing-pad", [("raw_http", "a"), ("b", '""')]),
])


class Setup:
    def __init__(self, tmp):
        from conftest import Factory
        self.tmp = tmp
        self.factory = Factory(tmp)
        self.others = []
        self.nodes = {}
        self.fronts = {}

    def node(self, kind):
        if kind not in self.nodes:
            name = "%s-node" % kind
            args = ["--master", "--processes", "2", "--socket", "127.0.0.1:0",
                    "--socket", self.tmp / name / "node.sock", "--wsgi-file", APP]
            try:
                if kind == "ruwsgi":
                    self.nodes[kind] = self.factory(*args, name=name)
                else:
                    self.nodes[kind] = start_uwsgi(args, self.tmp / name, name=name)
                    self.others.append(self.nodes[kind])
            except BaseException as e:
                self.nodes[kind] = e
        got = self.nodes[kind]
        if isinstance(got, BaseException):
            pytest.fail("%s could not be started: %s" % (kind, got), pytrace=False)
        return got

    def nginx(self, kind, transport):
        key = (kind, transport)
        if key not in self.fronts:
            node = self.node(kind)
            sock = [x for x in node.listeners if x.kind == "socket"
                    and x.is_unix == (transport == "unix")][0]
            upstream = sock.addr if sock.is_unix else "127.0.0.1:%d" % sock.port
            self.fronts[key] = Nginx(upstream, self.tmp / ("nginx-%s-%s" % key),
                                     locations=LOCATIONS)
        return self.fronts[key]

    def close(self):
        for ng in self.fronts.values():
            ng.stop()
        self.factory.cleanup()
        for srv in self.others:
            srv.kill()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not helpers.nginx_bin():
        pytest.fail("nginx is not installed: run `bash scripts/setup.sh`")
    s = Setup(tmp_path_factory.mktemp("rpc_nginx"))
    yield s
    s.close()


def get(ng, path, headers=None, timeout=10.0):
    r = http_request(ng.addr, "GET", path, headers=headers, timeout=timeout)
    assert r.status is not None, "no response from nginx for %s: %r\n%s" % (
        path, r, ng.error_log()[-2000:])
    return r


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_http_bridge(setup, kind, transport):
    ng = setup.nginx(kind, transport)
    r = get(ng, "/hello/world")
    assert r.status == 200 and r.body == b"hello world", r
    assert r.header("Content-Type") == b"application/binary", r
    assert r.header("Content-Length") == b"11", r
    # the Accept header becomes the Content-Type
    r = get(ng, "/hello/world", headers={"Accept": "text/plain"})
    assert r.status == 200 and r.header("Content-Type") == b"text/plain", r
    r = get(ng, "/hello/world", headers={"Accept": "*/*"})
    assert r.status == 200 and r.header("Content-Type") == b"application/binary", r
    # more arguments; nginx decodes %XX in the path before passing PATH_INFO
    r = get(ng, "/echo_args/a/b/c")
    assert r.status == 200 and r.body == b"3:a|b|c", r
    r = get(ng, "/hello/w%20x")
    assert r.status == 200 and r.body == b"hello w x", r
    # a reply over 64 KiB
    r = get(ng, "/big/100000")
    assert r.status == 200 and r.body == pattern(100000), (r.head, len(r.body))
    # unknown function and empty result: 404; no function named: 500
    for path in ("/nope/x", "/nothing"):
        r = get(ng, path)
        assert r.status == 404, (path, r)
    r = get(ng, "/")
    assert r.status == 500, r
    # the same socket still serves ordinary requests
    r = get(ng, "/app/")
    assert r.status == 200 and r.body == b"rpc node ready", r


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_raw_locations(setup, kind, transport):
    ng = setup.nginx(kind, transport)
    r = get(ng, "/raw/one")
    assert r.status == 200 and r.body == b"raw:world", r
    assert r.header("X-Rpc-Raw") == b"yes" and r.header("Content-Type") == b"text/plain", r
    r = get(ng, "/raw/padded")
    assert r.status == 200 and r.body == b"raw:a,b", r
    r = get(ng, "/raw/query?who=bob")
    assert r.status == 200 and r.body == b"raw:bob,x,y", r
    r = get(ng, "/raw/query")        # $arg_who is empty: skipped like a pad
    assert r.status == 200 and r.body == b"raw:x,y", r
    # with the request headers passed, each one adds two items (name, value)
    r = get(ng, "/raw/headers")
    assert r.status == 200, r
    assert r.body == b"raw:world,HTTP_HOST,localhost,HTTP_CONNECTION,close", r
    # an unknown function writes nothing: nginx answers 502
    r = get(ng, "/raw/unknown")
    assert r.status == 502, r


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trailing_empty_item_is_refused_by_uwsgi(setup, transport):
    """Reference fact, real uWSGI only: an empty item is skipped anywhere but at the very end
    of the array; a trailing one makes uWSGI drop the whole request ("invalid uwsgi array"),
    so nginx answers 502. Whether ruwsgi copies this is its own choice, not checked here."""
    ng = setup.nginx("uwsgi", transport)
    r = get(ng, "/raw/trailing-pad")
    assert r.status == 502, r
