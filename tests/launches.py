"""The subprocesses the suite reads (scripts launched for real, multi-device and multi-process checks),
started as soon as the tests are collected and run one after another in a background thread.

The in-process tests keep one core busy (tracing and compiling are single-threaded); each launch is a
fresh interpreter that imports jax and compiles its own programs, and it runs meanwhile on the other
core. A test module registers its launches when it is imported::

    XOR = launches.launch("train_xor", lambda out: [sys.executable, "scripts/train_xor.py", f"--workdir={out}/run"])

and a test reads ``XOR.result()`` (a ``subprocess.CompletedProcess``) and the files under ``XOR.out``.
``result()`` waits for that launch only (it joins the background thread's run of it: a test never reads
a launch's files while it is still writing them); one the background thread has not reached yet runs at
once in the caller. Launches of modules that were not collected (``pytest tests/test_x.py``, ``-k``) are not
started in the background, only when a test asks for them.

A launch's output is kept (``result().stdout``, ``.stderr``); when a test of a module that read a launch
fails, its report shows that output (:func:`report_sections`, called by tests/conftest.py). Launches run
with ``PYTHONFAULTHANDLER=1``: a hard crash (an abort in XLA) leaves the Python stack in their stderr.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BASE = tempfile.mkdtemp(prefix="lecture6-launches-")
atexit.register(shutil.rmtree, _BASE, ignore_errors=True)
_ALL: list[Launch] = []
_NICE = ["nice", "-n", "10"] if shutil.which("nice") else []


class Launch:
    """One subprocess: its output folder ``out`` (empty, made at registration) and, once run, its result."""

    def __init__(self, name: str, argv: Callable[[str], list[str]], env: dict | None, timeout: float, module: str):
        self.name, self.module, self.timeout = name, module, timeout
        self.out = os.path.join(_BASE, name)
        os.makedirs(self.out)
        self.argv = argv(self.out)
        self.env = env
        self._lock = threading.Lock()
        self._result: subprocess.CompletedProcess | None = None
        self._proc: subprocess.Popen | None = None
        self.read_by: set[str] = set()  # the modules whose code called result()

    def result(self) -> subprocess.CompletedProcess:
        self.read_by.add(sys._getframe(1).f_globals.get("__name__", ""))
        with self._lock:  # the background thread holds it while this launch runs there
            if self._result is None:
                self._result = self._run()
            return self._result

    def _run(self) -> subprocess.CompletedProcess:
        # Its own process group (a launcher's workers go down with it) and a low priority, so that the
        # in-process tests, which someone is waiting for, keep their core.
        env = {**(os.environ if self.env is None else self.env), "PYTHONFAULTHANDLER": "1"}
        self._proc = subprocess.Popen([*_NICE, *self.argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._stop()
            stdout, stderr = self._proc.communicate()
            stderr += f"\n[tests/launches.py: {self.name} killed after its {self.timeout} s timeout]"
        return subprocess.CompletedProcess(self.argv, self._proc.returncode, stdout, stderr)

    def _stop(self):
        if self._proc is not None and self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def launch(name: str, argv: Callable[[str], list[str]], *, env: dict | None = None,
           timeout: float = 300) -> Launch:
    """Register a launch; ``argv(out)`` builds its command line from its output folder."""
    if any(item.name == name for item in _ALL):
        raise ValueError(f"a launch named {name!r} is already registered")
    module = sys._getframe(1).f_globals.get("__name__", "")
    item = Launch(name, argv, env, timeout, module)
    _ALL.append(item)
    return item


def registered() -> list[Launch]:
    """Every launch registered so far, in order."""
    return list(_ALL)


def without_timings(obj):
    """A script's JSON output less its timings (keys ending in ``seconds`` or ``per_second``), to compare runs."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items()
                if not (k.endswith("seconds") or k.endswith("per_second"))}
    return [without_timings(v) for v in obj] if isinstance(obj, list) else obj


def installed_versions() -> str:
    """``jax X, jaxlib Y`` as installed here (the form of RESULTS.md's ``xor_exact.versions`` figure)."""
    import importlib.metadata

    return ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("jax", "jaxlib"))


def recorded_versions() -> str:
    """The jax and jaxlib ``make test`` installs, as benchmarks/RESULTS.md records them (``xor_exact.versions``)."""
    import re

    with open(os.path.join(ROOT, "benchmarks", "RESULTS.md"), encoding="utf-8") as f:
        return re.search(r"<!-- figure: xor_exact.versions = (.+?) -->", f.read()).group(1)


def fresh_cache_env() -> dict:
    """This environment with a compilation cache of its own, empty: a launch that compiles every program afresh
    (a rerun compared with a first run must not read the first run's programs)."""
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": tempfile.mkdtemp(prefix="cache-", dir=_BASE)}


def python(*args: str) -> list[str]:
    """``[sys.executable, *args]``: the interpreter running the tests."""
    return [sys.executable, *args]


def report_sections(module: str, lines: int = 150) -> list[tuple[str, str]]:
    """(title, text) of the output of every launch that ``module`` has read: the last ``lines`` lines of
    its stdout and stderr, for the report of a failing test of that module."""
    sections = []
    for item in _ALL:
        p = item._result
        if module not in item.read_by or p is None:
            continue
        for stream, text in (("stdout", p.stdout), ("stderr", p.stderr)):
            kept = text.splitlines()[-lines:]
            left = len(text.splitlines()) - len(kept)
            sections.append((f"launch {item.name}: {stream} (exit code {p.returncode})",
                             (f"[... {left} earlier lines]\n" if left else "") + "\n".join(kept)))
    return sections


def start(modules: set[str]) -> None:
    """Run, in registration order on a daemon thread, the launches of the collected ``modules``."""
    todo = [item for item in _ALL if item.module in modules]

    def work():
        for item in todo:
            if item._lock.acquire(blocking=False):  # a test that got there first runs it itself
                try:
                    if item._result is None:
                        item._result = item._run()
                except Exception:  # e.g. the command cannot start: a test reading it runs it and sees why
                    pass
                finally:
                    item._lock.release()

    if todo:
        threading.Thread(target=work, name="launches", daemon=True).start()


@atexit.register
def _stop_all():
    for item in _ALL:
        item._stop()
