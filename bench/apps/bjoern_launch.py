"""Run a WSGI app under bjoern in N forked processes sharing one listening socket.

usage: bjoern_launch.py APP_FILE HOST PORT [PROCESSES]
"""
import os
import runpy
import signal
import sys

import bjoern


def main():
    app_file, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    nproc = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    app = runpy.run_path(app_file)["application"]
    bjoern.listen(app, host, port)
    kids = []
    for _ in range(nproc):
        pid = os.fork()
        if pid == 0:
            try:
                bjoern.run()
            finally:
                os._exit(0)
        kids.append(pid)

    def stop(*_):
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in kids:
        os.wait()


if __name__ == "__main__":
    main()
