"""A mule script (`mule = mulescript.py`, run as __main__ in its mule): reports what the mule
API says in a mule, then loops on uwsgi.mule_get_msg(), recording every message. The message
b"farmget" makes it read one message with uwsgi.farm_get_msg(); b"raise:N" makes it raise
signal N; b"return" makes the script return (the mule exits and is respawned)."""
import os
import time

import uwsgi
from records import append_record, outcome

OUT = os.environ["MULE_OUT"]


def record(tag, **fields):
    append_record(OUT, tag, **fields)


t0 = time.monotonic()
empty = outcome(uwsgi.mule_get_msg, timeout=1)
waited = time.monotonic() - t0
record("script-start", name=__name__, empty=empty, waited=waited,
       mule_file=outcome(uwsgi.mule_file),
       in_farm=outcome(uwsgi.in_farm), in_solo=outcome(uwsgi.in_farm, "solo"),
       in_pair=outcome(uwsgi.in_farm, "pair"), in_nope=outcome(uwsgi.in_farm, "nope"),
       recv_size=outcome(uwsgi.mule_msg_recv_size),
       register=outcome(uwsgi.register_signal, 90, "", lambda n: None))

while True:
    msg = uwsgi.mule_get_msg()
    record("script", msg=msg.decode("latin-1"))
    if msg == b"farmget":
        record("script-farm", msg=uwsgi.farm_get_msg().decode("latin-1"))
    elif msg == b"return":
        break
    elif msg.startswith(b"raise:"):
        record("script-raised", result=outcome(uwsgi.signal, int(msg[6:])))
