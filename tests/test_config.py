"""Configuration: ini/yaml/json/toml, placeholders, env, errors, --help, --show-config,
need-app."""
import json
import re
import shutil

import pytest
import requests

from helpers import APPS, REPO, connect, read_response, run_binary, wait_until

HELLO = REPO / "examples" / "hello.py"

FORMATS = {
    "ini": ("--ini", "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\n"
                     "processes = 2\n"),
    "yaml": ("--yaml", "uwsgi:\n  http-socket: 127.0.0.1:0\n  wsgi-file: {app}\n  master: true\n"
                       "  processes: 2\n"),
    "json": ("--json", json.dumps({"uwsgi": {"http-socket": "127.0.0.1:0", "wsgi-file": "{app}",
                                             "master": True, "processes": 2}})),
    "toml": ("--toml", "[uwsgi]\nhttp-socket = \"127.0.0.1:0\"\nwsgi-file = \"{app}\"\n"
                       "master = true\nprocesses = 2\n"),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_config_formats(ruwsgi, tmp_path, fmt):
    opt, text = FORMATS[fmt]
    conf = tmp_path / ("conf." + ("yml" if fmt == "yaml" else fmt))
    conf.write_text(text.replace("{app}", str(APPS / "fault.py")))
    srv = ruwsgi(opt, conf)
    facts = requests.get(srv.url + "/uwsgi", timeout=5).json()
    assert facts["numproc"] == 2
    wait_until(lambda: len(srv.children()) == 2, 10, what="2 workers")
    assert srv.stop() == 0


def copy_fault(d):
    shutil.copy(APPS / "fault.py", d / "fault.py")


def test_placeholders_magic_env_and_custom(ruwsgi, tmp_path):
    d = tmp_path / "site"
    d.mkdir()
    copy_fault(d)
    (d / "myconf.ini").write_text(
        "[uwsgi]\n"
        "; the custom-key placeholder pattern used throughout uWSGI's docs\n"
        "project = fault\n"
        "base = %d\n"
        "http-socket = 127.0.0.1:0\n"
        "wsgi-file = %(base)%(project).py\n"
        "env = GREETING=$(RUWSGI_TEST_GREETING)\n"
        "env = CONFNAME=%n\n"
        "processes = 1\n")
    srv = ruwsgi("--ini", d / "myconf.ini", env={"RUWSGI_TEST_GREETING": "hi-from-env"})
    assert requests.get(srv.url + "/osenv?k=GREETING", timeout=5).text == "hi-from-env"
    assert requests.get(srv.url + "/osenv?k=CONFNAME", timeout=5).text == "myconf"
    opt = requests.get(srv.url + "/uwsgi", timeout=5).json()["opt"]
    assert opt["wsgi-file"] == {"bytes": str(d / "fault.py")} or \
        opt["wsgi-file"] == {"bytes": str(d) + "//fault.py"}


def test_set_option(ruwsgi, fault_app):
    srv = ruwsgi("--http-socket", "127.0.0.1:0", "--wsgi-file", fault_app, "--set", "foo=bar")
    opt = requests.get(srv.url + "/uwsgi", timeout=5).json()["opt"]
    assert opt["foo"] == {"bytes": "bar"}


def test_ini_section_suffix(ruwsgi, tmp_path, fault_app):
    conf = tmp_path / "multi.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:1\nwsgi-file = /nonexistent.py\n\n"
                    "[other]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n" % fault_app)
    srv = ruwsgi("--ini", "%s:other" % conf)
    assert requests.get(srv.url, timeout=5).text == "OK"


def test_env_var_options(ruwsgi, fault_app):
    srv = ruwsgi(env={"UWSGI_HTTP_SOCKET": "127.0.0.1:0", "UWSGI_WSGI_FILE": fault_app,
                      "UWSGI_PROCESSES": "2", "UWSGI_MASTER": "1"})
    assert requests.get(srv.url + "/uwsgi", timeout=5).json()["numproc"] == 2


def test_bare_ini_argument(ruwsgi, tmp_path, fault_app):
    conf = tmp_path / "bare.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n" % fault_app)
    srv = ruwsgi(conf)
    assert requests.get(srv.url, timeout=5).text == "OK"


def test_unknown_cli_option_fails():
    r = run_binary(["--http-socket", "127.0.0.1:0", "--no-such-option-xyz", "1",
                    "--wsgi-file", HELLO])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "no-such-option-xyz" in r.stderr


def test_unknown_ini_option_names_file_and_line(tmp_path):
    conf = tmp_path / "typo.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\nprocesess = 2\n" % HELLO)
    r = run_binary(["--ini", conf])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "procesess" in r.stderr
    assert re.search(r"typo\.ini:4\b", r.stderr), r.stderr


def test_bad_value_names_option():
    r = run_binary(["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--processes", "abc"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "processes" in r.stderr


def test_missing_config_file(tmp_path):
    r = run_binary(["--ini", tmp_path / "nope.ini"])
    assert r.returncode == 1
    assert "nope.ini" in r.stderr


def test_help():
    r = run_binary(["--help"])
    assert r.returncode == 0
    out = r.stdout + r.stderr
    for opt in ("--http-socket", "--socket", "--wsgi-file", "--processes", "--master", "--ini"):
        assert opt in out, opt


def test_show_config(ruwsgi, tmp_path):
    conf = tmp_path / "show.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\nprocesses = 3\n" % HELLO)
    srv = ruwsgi("--ini", conf, "--show-config", ready=False)
    srv.wait_log(r"\[uwsgi\]", timeout=20)
    srv.wait_log(r"(?m)^processes = 3\s*$", timeout=5)
    srv.wait_log(r"(?m)^http-socket = 127\.0\.0\.1:0\s*$", timeout=5)


@pytest.mark.parametrize("variant", ["missing-file", "syntax-error", "no-callable",
                                     "explicit-need-app"])
def test_need_app_exit_22(tmp_path, variant):
    app = tmp_path / "app.py"
    args = ["--http-socket", "127.0.0.1:0", "--master"]
    if variant == "missing-file":
        args += ["--wsgi-file", tmp_path / "missing.py"]
    elif variant == "syntax-error":
        app.write_text("def application(:\n")
        args += ["--wsgi-file", app]
    elif variant == "no-callable":
        app.write_text("x = 1\n")
        args += ["--wsgi-file", app]
    else:
        app.write_text("raise ImportError('broken at import')\n")
        args += ["--wsgi-file", app, "--need-app"]
    r = run_binary(args, timeout=30)
    assert r.returncode == 22, (r.returncode, r.stderr[-2000:])


def test_repeated_socket_options_accumulate(ruwsgi, tmp_path, fault_app):
    conf = tmp_path / "two.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nhttp-socket = 127.0.0.1:0\n"
                    "wsgi-file = %s\n" % fault_app)
    srv = ruwsgi("--ini", conf, n_sockets=2)
    ports = {lst.port for lst in srv.listeners}
    assert len(ports) == 2
    for p in ports:
        assert requests.get("http://127.0.0.1:%d/" % p, timeout=5).text == "OK"


OPT_APP = """\
import uwsgi


def application(environ, start_response):
    body = repr(uwsgi.opt[environ["PATH_INFO"].lstrip("/")]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def test_custom_key_reaches_uwsgi_opt_and_is_logged(ruwsgi, tmp_path):
    (tmp_path / "optapp.py").write_text(OPT_APP)
    conf = tmp_path / "app.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nacc-custom = %n-value\n"
                    "wsgi-file = %doptapp.py\nhost = db.internal\n")
    srv = ruwsgi("--ini", conf)
    assert requests.get(srv.url + "/acc-custom", timeout=5).text == "b'app-value'"
    assert requests.get(srv.url + "/host", timeout=5).text == "b'db.internal'"
    lines = srv.wait_log(r"^ruwsgi: custom option .*$", count=2)
    assert [m.group(0) for m in lines] == [
        "ruwsgi: custom option 'acc-custom' (from %s:3) kept for uwsgi.opt" % conf,
        "ruwsgi: custom option 'host' (from %s:5) kept for uwsgi.opt" % conf,
    ]
    assert srv.stop() == 0
    assert len(re.findall(r"custom option 'acc-custom'", srv.log_text())) == 1, \
        "reported once, not per worker"


@pytest.mark.parametrize("line,meant", [
    ("harakri = 5", "harakiri"),
    ("process = 2", "processes"),
    ("http_socket = 127.0.0.1:0", "http-socket"),
    ("Processes = 2", "processes"),
])
def test_near_miss_of_an_option_fails(tmp_path, line, meant):
    conf = tmp_path / "typo.ini"
    conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n%s\n" % (HELLO, line))
    r = run_binary(["--ini", conf])
    assert r.returncode == 1, (r.returncode, r.stderr)
    key = line.split(" =")[0]
    assert "ruwsgi: unknown option '%s' (from %s:4): did you mean '%s'?" % (key, conf, meant) \
        in r.stderr, r.stderr
    assert "listening on" not in r.stderr


def test_near_miss_in_set_fails():
    r = run_binary(["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--set", "process=2"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "unknown option 'process' (from command line argument 5): did you mean 'processes'?" \
        in r.stderr, r.stderr


def test_strict_refuses_custom_keys(tmp_path):
    conf = tmp_path / "strict.ini"
    conf.write_text("[uwsgi]\nstrict = true\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n"
                    "acc-custom = %%n-value\n" % HELLO)
    r = run_binary(["--ini", conf])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "unknown option 'acc-custom' (from %s:5) in strict mode" % conf in r.stderr, r.stderr
    r = run_binary(["--strict", "--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO,
                    "--set", "acc-custom=1"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "in strict mode" in r.stderr


def keepalive_twice(srv):
    """Two requests on one connection: the server kept it open."""
    s = connect(srv.addr)
    try:
        for _ in range(2):
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, headers, _, _ = read_response(s)
            assert status == 200 and headers.get("connection") != "close", headers
    finally:
        s.close()


@pytest.mark.parametrize("how", ["cli-bare", "cli-number", "ini"])
def test_http_keepalive_is_accepted(ruwsgi, tmp_path, fault_app, how):
    if how == "ini":
        conf = tmp_path / "ka.ini"
        conf.write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = %s\n"
                        "http-keepalive = 1\n" % fault_app)
        args = ["--ini", conf]
    else:
        args = ["--http-socket", "127.0.0.1:0", "--http-keepalive"]
        if how == "cli-number":
            args.append("1")
        args += ["--wsgi-file", fault_app]
    srv = ruwsgi(*args)
    keepalive_twice(srv)
    opt = requests.get(srv.url + "/uwsgi", timeout=5).json()["opt"]
    assert opt["http-keepalive"] in (True, {"bytes": "1"}), opt
    assert "warning" not in srv.log_text()
    assert srv.stop() == 0


def test_show_config_round_trip(ruwsgi, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "optapp.py").write_text(OPT_APP)
    conf = site / "placeholders.ini"
    conf.write_text(
        "[uwsgi]\nproject = optapp\nbase = %d\nset-ph = port=0\nprocess = 2\n"
        "http-socket = 127.0.0.1:%(port)\nwsgi-file = %(base)%(project).py\n"
        "processes = %(process)\nacc-custom = %n-value\nenv = WHERE=$(RUWSGI_TEST_WHERE)\n")
    r = run_binary(["--ini", conf, "--show-config"], env={"RUWSGI_TEST_WHERE": "here"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("[uwsgi]\n"), out
    assert "%(" not in out and "$(" not in out and "%d" not in out, out
    lines = out.splitlines()
    for expected in ("wsgi-file = %s/optapp.py" % site, "http-socket = 127.0.0.1:0",
                     "processes = 2", "acc-custom = placeholders-value", "env = WHERE=here",
                     "set-placeholder = port=0", "set-placeholder = process=2"):
        assert expected in lines, (expected, out)
    # Loaded back from elsewhere, without the environment: the same instance.
    other = tmp_path / "elsewhere"
    other.mkdir()
    shown = other / "shown.ini"
    shown.write_text(out)
    srv = ruwsgi("--ini", shown, env={"RUWSGI_TEST_WHERE": "not-used"})
    assert requests.get(srv.url + "/acc-custom", timeout=5).text == "b'placeholders-value'"
    assert requests.get(srv.url + "/processes", timeout=5).text == "b'2'"
    srv.wait_children(2)
    assert srv.stop() == 0


@pytest.mark.parametrize("args", [
    ["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--uid", "no-such-user-xyz"],
    ["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--gid", "no-such-group-xyz"],
    ["--http-socket", "192.0.2.1:80", "--wsgi-file", HELLO],
    ["--http-socket", "127.0.0.1:0", "--wsgi-file", "/no/such/app.py"],
    ["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--pidfile", "/no/such/dir/p.pid"],
    ["--http-socket", "127.0.0.1:0", "--wsgi-file", HELLO, "--logto", "/no/such/dir/log"],
    ["--wsgi-file", HELLO],
    ["--processes", "abc"],
], ids=["uid", "gid", "bind", "no-app", "pidfile", "logto", "no-socket", "bad-value"])
def test_startup_errors_end_with_a_newline(args):
    """Every start-up failure exits non-zero with its message on a line of its own."""
    r = run_binary(args)
    assert r.returncode != 0, (r.returncode, r.stderr)
    assert r.stderr.strip(), "no message"
    assert r.stderr.endswith("\n"), repr(r.stderr[-200:])
