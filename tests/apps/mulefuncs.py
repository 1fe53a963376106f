"""Mule callables (`mule = mulefuncs:loop`, found on the pythonpath)."""
import os

import uwsgi
from records import append_record


def record(tag, **fields):
    append_record(os.environ["MULE_OUT"], tag, **fields)


def loop():
    """Record every message this mule gets, forever."""
    record("func-start", mule_file=repr(uwsgi.mule_file()))
    while True:
        msg = uwsgi.mule_get_msg()
        record("func", msg=msg.decode("latin-1"))
