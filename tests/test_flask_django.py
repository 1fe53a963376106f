"""Real Flask and Django apps under ruwsgi, compared byte for byte (status + body) with the
same apps under wsgiref, through --http-socket and through nginx `uwsgi_pass` to --socket
over TCP and over a unix socket."""
import hashlib
import os
import sys

import pytest
import requests

from helpers import APPS, VENV, wait_until

sys.path.insert(0, str(APPS))
import django_site  # noqa: E402

UPLOAD = bytes(range(256)) * 1200 + b"tail"     # ~300 KiB, all byte values


def scenario():
    """(name, method, path, kwargs, expected status). Same requests for every server."""
    return [
        ("index", "GET", "/", {}, 200),
        ("query", "POST", "/json?a=1&b=%C3%A9", {"json": {"k": [1, 2, "é"]}}, 200),
        ("form", "POST", "/form", {"data": {"name": "Zoë", "x": ["1", "2"], "empty": ""}}, 200),
        ("upload", "POST", "/upload", {"files": {"file": ("data.bin", UPLOAD)},
                                        "data": {"note": "n1"}}, 200),
        ("stream", "GET", "/stream?n=50", {"stream": True}, 200),
        ("notfound", "GET", "/definitely/not/here", {}, 404),
        ("error", "GET", "/boom", {}, 500),
    ]


def fetch(base, method, path, kw):
    r = requests.request(method, base + path, timeout=20, **kw)
    return r.status_code, r.content


@pytest.fixture(scope="module")
def django_project(tmp_path_factory):
    dest = tmp_path_factory.mktemp("django")
    return django_site.make_project(str(VENV / "bin" / "django-admin"), dest)


def app_args(kind, django_project):
    if kind == "flask":
        d = APPS / "flaskapp"
        return (["--chdir", d, "--pythonpath", d, "--module", "app:app"],
                ["--chdir", d, "--pythonpath", d, "--module", "app:app"])
    return (["--chdir", django_project, "--pythonpath", django_project,
             "--module", "proj.wsgi:application"],
            ["--chdir", django_project, "--pythonpath", django_project,
             "--module", "proj.wsgi:application"])


@pytest.mark.parametrize("transport", ["http-socket", "nginx-tcp", "nginx-unix"])
@pytest.mark.parametrize("kind", ["flask", "django"])
def test_same_as_wsgiref(kind, transport, ruwsgi, nginx, wsgiref_server, django_project,
                         venv_site, tmp_path):
    ours_args, ref_args = app_args(kind, django_project)
    ref = wsgiref_server(*ref_args, "--pythonpath", venv_site)
    common = ["--master", "--processes", "2", "--pythonpath", venv_site] + ours_args
    if transport == "http-socket":
        srv = ruwsgi("--http-socket", "127.0.0.1:0", *common)
        base = srv.url
    elif transport == "nginx-tcp":
        srv = ruwsgi("--socket", "127.0.0.1:0", *common)
        base = nginx("127.0.0.1:%d" % srv.uwsgi.port).url
    else:
        sock = tmp_path / "app.sock"
        srv = ruwsgi("--socket", sock, *common)
        base = nginx(str(sock)).url

    for name, method, path, kw, want in scenario():
        theirs = fetch(ref.url, method, path, kw)
        ours = fetch(base, method, path, kw)
        assert theirs[0] == want, (name, theirs)
        assert ours[0] == theirs[0], "%s: status %s under ruwsgi, %s under wsgiref; body %r" % (
            name, ours[0], theirs[0], ours[1][:300])
        assert ours[1] == theirs[1], "%s: body differs:\nruwsgi:  %r\nwsgiref: %r" % (
            name, ours[1][:300], theirs[1][:300])

    # the upload really went through whole
    sha = hashlib.sha256(UPLOAD).hexdigest()
    status, body = fetch(base, "POST", "/upload", {"files": {"file": ("data.bin", UPLOAD)}})
    assert status == 200 and body.decode().startswith("upload:data.bin:%d:%s" % (len(UPLOAD), sha))

    # the app exception is logged with its traceback
    wait_until(lambda: "Traceback" in srv.log_text() and "deliberate failure" in srv.log_text(),
               10, what="traceback in the ruwsgi log")
    assert "ValueError" in srv.log_text()
    assert srv.stop() == 0


def test_flask_streaming_is_incremental(ruwsgi, venv_site):
    """A streamed response arrives as the app yields (not buffered to the end)."""
    d = APPS / "flaskapp"
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--chdir", d, "--pythonpath", d,
                 "--module", "app:app", "--pythonpath", venv_site)
    with requests.get(srv.url + "/stream?n=2000", stream=True, timeout=20) as r:
        assert r.status_code == 200
        lines = b"".join(r.iter_content(65536)).splitlines()
    assert len(lines) == 2000 and lines[-1] == b"line 1999 of 2000"


def test_django_csrf_protected_view_rejects_without_token(ruwsgi, django_project, venv_site,
                                                         tmp_path):
    """CSRF middleware runs as under any server: a protected POST without a token is 403."""
    views = django_project / "site_app" / "views.py"
    text = views.read_text()
    if "def protected" not in text:
        views.write_text(text + "\n\ndef protected(request):\n"
                                "    return HttpResponse('ok', content_type='text/plain')\n")
        urls = django_project / "site_app" / "urls.py"
        urls.write_text(urls.read_text().replace(
            "]\n", "    path('protected', views.protected),\n]\n"))
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--chdir", django_project,
                 "--pythonpath", django_project, "--module", "proj.wsgi:application",
                 "--pythonpath", venv_site)
    assert requests.post(srv.url + "/protected", data={"a": "1"}, timeout=10).status_code == 403
    assert requests.get(srv.url + "/protected", timeout=10).content == b"ok"
