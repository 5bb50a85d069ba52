"""Name the running test when the test process dies without its summary.

pytest's fault handler prints the Python stack on a crash by signal (SIGSEGV, SIGABRT), but a fatal
error that ends the process with ``_exit`` (XLA's fatal log, e.g. an unknown flag in ``XLA_FLAGS``: the
message goes to the test's captured stderr and is lost with it) or SIGKILL (the OOM killer) leaves the log
with a row of dots and nothing else. A small watcher process (started by tests/conftest.py, no imports)
reads a pipe: this process writes the id of each test as it starts it, and ``done`` when the session
ends. If the pipe closes before ``done``, the watcher prints the last test to the session's stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys

_WATCHER = r"""
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: pytest ends its session and says so itself
last = "(none: it ended while collecting the tests)"
for line in sys.stdin.buffer:
    line = line.decode(errors="replace").rstrip("\n")
    if line == "done":
        sys.exit(0)
    last = line
sys.stderr.write(f"\n[tests/crash_watch.py] the test process ended without finishing the session "
                 f"(a hard crash: no summary line follows); the test running was: {last}\n")
sys.stderr.flush()
"""

_pipe: subprocess.Popen | None = None


def start() -> None:
    """Start the watcher; its stderr is this process's stderr now (call it while pytest is not capturing)."""
    global _pipe
    _pipe = subprocess.Popen([sys.executable, "-S", "-c", _WATCHER], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, start_new_session=True)


def _send(line: str) -> None:
    if _pipe is not None and _pipe.stdin is not None:
        try:
            os.write(_pipe.stdin.fileno(), (line.replace("\n", " ") + "\n").encode())
        except OSError:  # the watcher is gone: nothing to tell it
            pass


def running(nodeid: str) -> None:
    """Tell the watcher which test starts now."""
    _send(nodeid)


def finished() -> None:
    """The session ended normally: the watcher exits quietly."""
    global _pipe
    if _pipe is not None:
        _send("done")
        _pipe.stdin.close()
        _pipe.wait()
        _pipe = None
