"""What the mule and decorator test apps share: JSON records appended, one line each, to a
file per tag (tests/helpers.py `recs` reads them), and the outcome of a call as text.
Imported from the apps' own directory, which ruwsgi puts on sys.path. Apps that real uWSGI
also loads (signalapp.py) keep their own copy: uWSGI does not add that directory."""
import json
import os
import time

import uwsgi


def append_record(out, tag, **fields):
    """Append {pid, wid, mid, t, **fields} to `out/tag` in one write (O_APPEND: the lines
    of concurrent processes never mix)."""
    d = {"pid": os.getpid(), "wid": uwsgi.worker_id(), "mid": uwsgi.mule_id(),
         "t": time.time()}
    d.update(fields)
    fd = os.open(os.path.join(out, tag), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(d) + "\n").encode())
    finally:
        os.close(fd)


def outcome(fn, *args, **kwargs):
    """repr() of what `fn` returns, or "ExceptionType: message"."""
    try:
        return repr(fn(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 - the test reads the exception
        return "%s: %s" % (type(e).__name__, e)
