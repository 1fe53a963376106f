"""uwsgidecorators' @spool, @spoolforever and @spoolraw, unmodified, with marker files in
$SPOOL_OUT."""
import json
import os

import uwsgi
from uwsgidecorators import spool, spoolforever, spoolraw

OUT = os.environ["SPOOL_OUT"]


def _append(name, line):
    with open(os.path.join(OUT, name), "a") as f:
        f.write(line + "\n")


@spool
def plain(args):
    _append("plain", json.dumps(sorted(args.items())))


@spool(pass_arguments=True)
def pickled(a, b, c=None, **kw):
    _append("pickled", repr((a, b, c, kw)))


@spoolforever
def forever(args):
    _append("forever", "run")


@spoolraw
def raw(args):
    _append("raw", json.dumps(sorted(args.items())))
    return uwsgi.SPOOL_OK


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/go":
        plain.spool(name="x", value="y")
        pickled(1, (2, 3), c={"k": b"\x00\xff"}, extra=[4.5])
        forever.spool(tick="1")
        raw.spool({"r": "1"})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
