"""Mules and farms under test (tests/test_mules.py). Records go to $MULE_OUT/<tag> as JSON
lines (pid, mule id, message).

At import (in the master, so every mule has them): `uwsgi.mule_msg_hook` and a hook added
with `install_mule_msg_hook` (plain mules hand each message to both); signals 5 (mule 1) and
9 (worker 1), whose handler sleeps 30 s while $MULE_OUT/slow exists (harakiri), and signals
6 (mule 2), 7 (mule 3), 8 (farm solo) and 4 (every worker) with a quick handler.

Endpoints (GET):
  /send?msg=M[&to=N | &farm=NAME | &strtarget=S]   repr(uwsgi.mule_msg(M, target))
  /farm?name=NAME&msg=M                            repr(uwsgi.farm_msg(NAME, M))
  /worker_api    the mule-only calls made in a worker, as JSON
  /raise?n=N     uwsgi.signal(N)
"""
import json
import os
import time
from urllib.parse import parse_qs

import uwsgi
from records import append_record, outcome

OUT = os.environ["MULE_OUT"]


def record(tag, **fields):
    append_record(OUT, tag, **fields)


def hook(msg):
    record("hook", msg=msg.decode("latin-1"))


def second_hook(msg):
    record("hook2", msg=msg.decode("latin-1"))


uwsgi.mule_msg_hook = hook
if hasattr(uwsgi, "install_mule_msg_hook"):
    uwsgi.install_mule_msg_hook(second_hook)


def slow_handler(signum):
    record("sig%d" % signum)
    if os.path.exists(os.path.join(OUT, "slow")):
        time.sleep(30)
        record("sig%d-survived" % signum)


def quick_handler(signum):
    record("sig%d" % signum)


uwsgi.register_signal(5, "mule1", slow_handler)
uwsgi.register_signal(9, "worker1", slow_handler)
# handled by the programmed mules while they wait in mule_get_msg() / farm queues
uwsgi.register_signal(6, "mule2", quick_handler)
uwsgi.register_signal(7, "mule3", quick_handler)
uwsgi.register_signal(8, "farm_solo", quick_handler)
# raised by a mule (mulescript.py's "raise:N" message)
uwsgi.register_signal(4, "workers", quick_handler)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body = "ok"
    if path == "/send":
        msg = q["msg"].encode()
        if "to" in q:
            body = outcome(uwsgi.mule_msg, msg, int(q["to"]))
        elif "farm" in q:
            body = outcome(uwsgi.mule_msg, msg, q["farm"].encode())
        elif "strtarget" in q:
            body = outcome(uwsgi.mule_msg, msg, q["strtarget"])
        else:
            body = outcome(uwsgi.mule_msg, msg)
    elif path == "/farm":
        body = outcome(uwsgi.farm_msg, q["name"], q["msg"].encode())
    elif path == "/worker_api":
        body = json.dumps({
            "mule_get_msg": outcome(uwsgi.mule_get_msg, timeout=1),
            "farm_get_msg": outcome(uwsgi.farm_get_msg),
            "in_farm": outcome(uwsgi.in_farm),
            "in_farm_solo": outcome(uwsgi.in_farm, "solo"),
            "mule_id": outcome(uwsgi.mule_id),
            "mule_file_2": outcome(uwsgi.mule_file, 2),
            "mule_file_3": outcome(uwsgi.mule_file, 3),
            "mule_file_1": outcome(uwsgi.mule_file, 1),
        })
    elif path == "/raise":
        body = outcome(uwsgi.signal, int(q["n"]))
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body.encode())))])
    return [body.encode()]
