"""How long JAX spent turning Python into programs inside a block: tracing, lowering to MLIR and XLA's
compile, as JAX itself reports them (``jax.monitoring`` duration events)::

    with compile_time.measure() as spent:
        model = ppca.fit_em(X, q, key=key)
    spent.seconds  # the part of the fit's wall time that was compiling, not computing

A program already compiled (same function, shapes and static arguments) costs nothing here on a second
call, so the figure says what a rerun in the same process would save. Blocks may nest; each counts the
events of its own thread only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import jax

#: The duration events JAX records for one new program: trace to a jaxpr, lower to MLIR, XLA compile.
EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)

_active = threading.local()


@dataclasses.dataclass
class Spent:
    seconds: float = 0.0
    programs: int = 0  # XLA compiles (cache hits of JAX's persistent compilation cache are not compiles)


def _listener(event: str, duration: float, **_):
    if event in EVENTS:
        for spent in getattr(_active, "stack", ()):
            spent.seconds += duration
            spent.programs += event == EVENTS[-1]


jax.monitoring.register_event_duration_secs_listener(_listener)


@contextlib.contextmanager
def measure():
    """A :class:`Spent` that adds up the compile events of this thread while the block runs."""
    spent = Spent()
    stack = _active.__dict__.setdefault("stack", [])
    stack.append(spent)
    try:
        yield spent
    finally:
        stack.remove(spent)
