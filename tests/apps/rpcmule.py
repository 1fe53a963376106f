"""A mule for the RPC tests: calls a function the app registered in the master, tries to
register one itself, writes both outcomes to $RPC_MULE_OUT, then idles."""
import os
import time

import uwsgi

lines = [repr(uwsgi.call(b"hello", b"mule"))]
try:
    uwsgi.register_rpc("from_mule", lambda: b"x")
    lines.append("registered")
except ValueError as e:
    lines.append("ValueError: %s" % e)
out = os.environ["RPC_MULE_OUT"]
with open(out + ".tmp", "w") as f:
    f.write("\n".join(lines))
os.rename(out + ".tmp", out)
while True:
    time.sleep(1)
