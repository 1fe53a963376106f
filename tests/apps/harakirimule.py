"""A mule that gives itself a 1-second harakiri and then takes longer; it reports its pid
first (to $HARAKIRI_MULE_OUT/<pid>)."""
import os
import time

import uwsgi

out = os.environ["HARAKIRI_MULE_OUT"]
open(os.path.join(out, str(os.getpid())), "w").close()
uwsgi.set_user_harakiri(1)
time.sleep(30)
