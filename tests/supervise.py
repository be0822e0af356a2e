"""Runs a command in its own process group and ends the whole group when PID exits.

Usage: supervise.py PID COMMAND [ARGS...]

`cargo lambda watch` starts one process per function; a test process that stops (or is
killed) must not leave any of them behind.
"""

import os
import signal
import subprocess
import sys
import time


def main() -> int:
    parent = int(sys.argv[1])
    child = subprocess.Popen(sys.argv[2:], start_new_session=True)

    def stop(*_):
        try:
            os.killpg(child.pid, signal.SIGTERM)
            time.sleep(1)
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while child.poll() is None:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            stop()
        time.sleep(0.5)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
