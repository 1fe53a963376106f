"""Serve a WSGI app under wsgiref (the reference) on 127.0.0.1:0.

usage: wsgiref_serve.py (--wsgi-file F | --module pkg.mod:app) [--chdir D] [--pythonpath D]...
Prints `wsgiref: listening on 127.0.0.1:PORT` on stderr once bound.
"""
import argparse
import importlib
import os
import runpy
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Handler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsgi-file")
    ap.add_argument("--module")
    ap.add_argument("--callable", default="application")
    ap.add_argument("--chdir")
    ap.add_argument("--pythonpath", action="append", default=[])
    a = ap.parse_args()
    if a.chdir:
        os.chdir(a.chdir)
    for p in reversed(a.pythonpath):
        sys.path.insert(0, p)
    if a.wsgi_file:
        sys.path.insert(0, os.path.dirname(os.path.abspath(a.wsgi_file)))
        app = runpy.run_path(a.wsgi_file)[a.callable]
    else:
        mod, _, attr = a.module.partition(":")
        app = getattr(importlib.import_module(mod), attr or a.callable)
    srv = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Handler)
    sys.stderr.write("wsgiref: listening on 127.0.0.1:%d (http-socket, fd %d)\n"
                     % (srv.server_port, srv.fileno()))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
