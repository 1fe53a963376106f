"""An app registering its RPC function with uwsgidecorators' @rpc (pyuwsgi's, unmodified)."""
import uwsgi
from uwsgidecorators import rpc


@rpc("decorated")
def decorated(*args):
    return b"decorated:" + b",".join(args)


def application(env, start_response):
    body = uwsgi.call(b"decorated", b"x", b"y") or b"None"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
