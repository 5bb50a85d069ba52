"""How the checker runs f: traced once, compiled with ``jax.jit``, evaluated in batches that fit a budget.

A check is usually called with a fresh lambda (``lambda M: linear_map(M, x)``) that closes over arrays
(a data set). :func:`compile_with` traces such a function to a jaxpr whose closed-over arrays become
arguments of the compiled program, so XLA never embeds them as constants (a 25 MB constant takes
seconds to compile) and two checks of functions with the same structure lower to the same program:
``jax.jit``'s persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``), where it is on, then serves
the second one without compiling.

Many evaluations of f (finite differences at every input, Jacobian columns) run through
:func:`map_in_batches`: ``jax.vmap`` over a batch whose size :func:`batch_size` derives from the
memory budget and an estimate of what one evaluation holds (:func:`evaluation_bytes`), and a
``jax.lax.scan`` over the batches.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core


class Traced:
    """``fn`` traced at example arguments: its jaxpr, its closed-over arrays and its output shape."""

    def __init__(self, fn: Callable, *args):
        self.closed, self.out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        self.tree = jax.tree.structure(self.out_shape)

    def function(self, consts) -> Callable:
        """The traced function, computing with ``consts`` in place of the arrays it closed over."""
        run = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(self.closed.jaxpr, consts))
        return lambda *args: jax.tree.unflatten(self.tree, run(*args))

    def uses_custom_vjp(self) -> bool:
        """Whether f calls a ``jax.custom_vjp`` function, which forward mode cannot differentiate."""
        return _uses_custom_vjp(self.closed.jaxpr)

    def evaluation_bytes(self) -> int:
        """An upper bound on the memory one evaluation holds: every value it computes, none freed."""
        return evaluation_bytes(self.closed.jaxpr)


def _uses_custom_vjp(jaxpr) -> bool:
    return any(e.primitive.name == "custom_vjp_call" or any(map(_uses_custom_vjp, jex_core.jaxprs_in_params(e.params)))
               for e in jaxpr.eqns)


def _bytes(aval) -> int:
    shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
    return 0 if shape is None or dtype is None else int(np.prod(shape, dtype=np.int64)) * jnp.dtype(dtype).itemsize


def evaluation_bytes(jaxpr) -> int:
    """The sum of the sizes of the inputs and of every value ``jaxpr`` computes, inner jaxprs included."""
    total = sum(_bytes(v.aval) for v in jaxpr.invars)
    for e in jaxpr.eqns:
        total += sum(_bytes(v.aval) for v in e.outvars)
        total += sum(evaluation_bytes(j) for j in jex_core.jaxprs_in_params(e.params))
    return total


def compile_with(program: Callable, traced: list[Traced], **static) -> Callable:
    """``program(fns, *args, **static)`` compiled once, ``fns`` the traced functions; returns ``run(*args)``.

    The traced functions' closed-over arrays are placed on the device once and passed as arguments.
    """
    consts = [[jax.device_put(c) for c in t.closed.consts] for t in traced]

    def run(consts, *args):
        return program([t.function(c) for t, c in zip(traced, consts)], *args, **static)

    jitted = jax.jit(run)
    return lambda *args: jitted(consts, *args)


#: Evaluations are batched (``jax.vmap``) up to a batch of about this many bytes: small evaluations gain
#: from running side by side, an evaluation that holds this much already keeps the cores busy (on the
#: 784-64-10 MNIST network, 19 MiB per evaluation, a batch of 4 was no faster per evaluation than one).
BATCH_BYTES = 16 * 2**20


def batch_size(n: int, bytes_each: int, budget: int) -> int:
    """How many of ``n`` evaluations, each holding ``bytes_each``, run side by side: as many as fit in
    :data:`BATCH_BYTES` and in ``budget``, at least one."""
    return int(max(1, min(n, min(BATCH_BYTES, budget) // max(1, bytes_each))))


def map_in_batches(fn: Callable, xs, batch: int):
    """``jax.vmap(fn)(xs)`` computed ``batch`` rows of ``xs`` at a time (padded to whole batches).

    Unlike ``jax.lax.map(..., batch_size=...)`` there is no remainder batch, so ``fn`` is traced once.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    if batch >= n:
        return jax.vmap(fn)(xs)
    n_batches = -(-n // batch)
    pad = n_batches * batch - n

    def padded(a):
        a = jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]) if pad else a
        return a.reshape(n_batches, batch, *a.shape[1:])

    _, ys = jax.lax.scan(lambda _, x: ((), jax.vmap(fn)(x)), (), jax.tree.map(padded, xs))
    return jax.tree.map(lambda y: y.reshape(n_batches * batch, *y.shape[2:])[:n], ys)
