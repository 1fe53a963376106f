"""A mule for the alarm tests: raises alarm `file` once with its id, then idles."""
import time

import uwsgi

uwsgi.alarm("file", "from mule %d" % uwsgi.mule_id())
while True:
    time.sleep(1)
