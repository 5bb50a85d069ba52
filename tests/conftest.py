"""Strict test settings, set once for the whole suite.

* float64 everywhere, so hand derivatives can be compared with autodiff at ~1e-12.
* implicit rank promotion raises: ``(n, d) + (d,)`` must be written as ``(n, d) + (1, d)``.
* warnings are errors (``filterwarnings = error`` in pyproject.toml) unless a test names them.
* every test gets its own PRNG key, derived from its node id, so tests never share randomness.
"""

import zlib

import jax
import pytest

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
    """Start a module's slow subprocesses as soon as a selected test needs them (a module lists the
    fixtures that wait for them in ``BACKGROUND_FIXTURES`` and starts them in ``start_background()``):
    they then run beside the rest of the suite, which mostly keeps one core busy."""
    if session.config.option.collectonly:
        return
    started = set()
    for item in session.items:
        module = getattr(item, "module", None)
        needs = getattr(module, "BACKGROUND_FIXTURES", set()) & set(getattr(item, "fixturenames", ()))
        if needs and module not in started:
            started.add(module)
            module.start_background()
