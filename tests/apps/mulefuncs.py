"""Mule callables (`mule = mulefuncs:loop`, found on the pythonpath)."""
import json
import os
import time

import uwsgi


def record(tag, **extra):
    d = {"pid": os.getpid(), "mid": uwsgi.mule_id(), "t": time.time()}
    d.update(extra)
    path = os.path.join(os.environ["MULE_OUT"], tag)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(d) + "\n").encode())
    finally:
        os.close(fd)


def loop():
    """Record every message this mule gets, forever."""
    record("func-start", mule_file=repr(uwsgi.mule_file()))
    while True:
        msg = uwsgi.mule_get_msg()
        record("func", msg=msg.decode("latin-1"))
