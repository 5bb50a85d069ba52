"""Strict test settings, set once for the whole suite.

* float64 everywhere, so hand derivatives can be compared with autodiff at ~1e-12.
* implicit rank promotion raises: ``(n, d) + (d,)`` must be written as ``(n, d) + (1, d)``.
* warnings are errors (``filterwarnings = error`` in pyproject.toml) unless a test names them.
* every test gets its own PRNG key, derived from its node id, so tests never share randomness.
* compiling is most of the suite's time (hundreds of small programs, each run once on tiny inputs), so
  XLA's backend optimizations are off **in this process only** (``jax_disable_most_optimizations``, JAX's
  public config, set below: LLVM at -O0; the HLO graph, and so the arithmetic, is the one the library runs
  with; about half the compile time of these tests), and every program compiled in this session goes to a
  compilation cache that lives for the session only: a program rebuilt from a new closure finds what an
  earlier test compiled, and a script launched by a test what an earlier launch compiled (the launches
  share a cache of their own, see below). The suite starts cold each time.
* the scripts and multi-process checks the tests launch (``tests/launches.py``, ``tests/test_sharding.py``)
  run as a user runs them: with JAX's and XLA's default settings. Nothing here reaches them but the
  launches' compilation cache. So the bit-for-bit and 1e-12 claims that those checks test (devices,
  processes, reruns) are tested with the optimizations users get.
* no XLA flag or compile option is set: an unknown one aborts the process on another jaxlib.
"""

import atexit
import os
import shutil
import tempfile
import zlib

# Two caches: this process's own, and one shared by the processes the tests launch (through the
# environment). JAX writes an entry in place (no temporary file, no lock), so a process can read an entry
# that another is still writing; JAX then warns, and here a warning fails the test that was running. No
# other process writes into this process's cache.
_CACHE = tempfile.mkdtemp(prefix="lecture6-test-xla-cache-")
_LAUNCH_CACHE = tempfile.mkdtemp(prefix="lecture6-launch-xla-cache-")
for _path in (_CACHE, _LAUNCH_CACHE):
    atexit.register(shutil.rmtree, _path, ignore_errors=True)
os.environ.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)  # the launches get JAX's defaults, whatever the shell set
os.environ.update({
    "JAX_COMPILATION_CACHE_DIR": _LAUNCH_CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
})

import jax  # noqa: E402  (after the environment above, which jax reads on import)
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_disable_most_optimizations", True)  # this process only (see above)
jax.config.update("jax_compilation_cache_dir", _CACHE)  # before anything is compiled


@pytest.fixture
def key(request):
    """A fresh ``jax.random.key`` per test, stable across runs (seeded by the test's id)."""
    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def rng(request):
    """A fresh NumPy generator per test, stable across runs."""
    import numpy as np

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def pytest_collection_finish(session):
    """Start the subprocesses the collected tests will read (tests/launches.py) on a background thread."""
    if session.config.option.collectonly:
        return
    import launches

    launches.start({item.module.__name__ for item in session.items if getattr(item, "module", None)})


def pytest_collection_modifyitems(items):
    """The modules that read launches run last, by when their launches have finished on the other core."""
    import launches

    late = {item.module for item in launches.registered()}
    items.sort(key=lambda item: getattr(getattr(item, "module", None), "__name__", "") in late)


# --- What the log says when something fails --------------------------------------------------------


def pytest_configure(config):
    """A hard crash (no summary line) names the running test (tests/crash_watch.py)."""
    import crash_watch

    crash_watch.start()


def pytest_runtest_logstart(nodeid, location):
    import crash_watch

    crash_watch.running(nodeid)


def pytest_sessionfinish(session, exitstatus):
    import crash_watch

    crash_watch.finished()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test of a module that read background launches shows their output (tests/launches.py)."""
    report = (yield).get_result()
    if report.failed and getattr(item, "module", None) is not None:
        import launches

        report.sections.extend(launches.report_sections(item.module.__name__))
