"""A mule that takes user lock 2, reports, releases it, then idles."""
import os
import time

import uwsgi

uwsgi.lock(2)
held = uwsgi.is_locked(2)
uwsgi.unlock(2)
out = os.environ["LOCKS_MULE_OUT"]
with open(out + ".tmp", "w") as f:
    f.write("held=%s after=%s" % (held, uwsgi.is_locked(2)))
os.rename(out + ".tmp", out)
while True:
    time.sleep(1)
