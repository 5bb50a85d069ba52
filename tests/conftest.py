"""Strict test settings, set once for the whole suite.

* float64 everywhere, so hand derivatives can be compared with autodiff at ~1e-12.
* implicit rank promotion raises: ``(n, d) + (d,)`` must be written as ``(n, d) + (1, d)``.
* warnings are errors (``filterwarnings = error`` in pyproject.toml) unless a test names them.
* every test gets its own PRNG key, derived from its node id, so tests never share randomness.
* compiling is most of the suite's time (hundreds of small programs, each run once on tiny inputs), so
  XLA's backend optimizations are off in this process (``jax_disable_most_optimizations``, JAX's public
  config: LLVM at -O0; the HLO graph, and so the arithmetic, is the one the library runs with), and every
  program compiled in this session goes to a compilation cache that lives for the session only: a script
  launched by a test, or a program rebuilt from a new closure, finds what an earlier test compiled. The
  suite starts cold each time. No XLA flag or compile option is set: an unknown one aborts the process
  on another jaxlib.
"""

import atexit
import os
import shutil
import tempfile
import zlib

_CACHE = tempfile.mkdtemp(prefix="lecture6-test-xla-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.update({
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
    "JAX_COMPILATION_CACHE_DIR": _CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
})

import jax  # noqa: E402  (after the environment above, which jax reads on import)
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


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
