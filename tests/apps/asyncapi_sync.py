"""The async API called in a sync worker: what works, what raises (as uWSGI does)."""
import uwsgi


def application(env, sr):
    out = []
    for name, fd in (("wait_fd_read", 0), ("wait_fd_write", -1)):
        try:
            getattr(uwsgi, name)(fd)
            out.append("%s: no error" % name)
        except OSError as e:
            out.append("%s: OSError %s" % (name, e))
    out.append("suspend: %r" % uwsgi.suspend())
    out.append("sleep: %r" % uwsgi.async_sleep(1))
    out.append("ready_fd: %d" % uwsgi.ready_fd())
    sr("200 OK", [("Content-Type", "text/plain")])
    return ["; ".join(out).encode()]
