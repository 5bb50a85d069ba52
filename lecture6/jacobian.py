"""Jacobian matrices: the slides' examples, and the Jacobian of any function in the lecture's layout.

The lecture's conventions, used everywhere in this package:

* The Jacobian of ``f: R^m -> R^n`` is ``n x m``: **rows are the outputs, columns are the inputs**.
* A function of a matrix, or with a matrix output, has the 2-D Jacobian ``d vec[f] / d vec[x]``, each
  matrix flattened row by row (:func:`lecture6.matrix_derivative.vec`).
* For a scalar ``f`` the Jacobian is the transpose of the gradient: ``1 x m`` versus ``m`` (or the shape
  of ``x``).

Each example sits next to its hand-written Jacobian:

* Slide "Jacobian matrices": ``f(x1, x2) = [2 x1 + x2, pi x2, -x1 / x2]`` (:func:`f_example`).
* Slide "Jacobian matrices ... different perspectives": ``f(x, y; a, b) = 2 a x + b / y``, differentiated
  with respect to ``(x, y)`` and to ``(a, b)`` (:func:`f_perspectives`).
* Slide "Jacobian versus gradient": for scalar ``f`` the Jacobian ``1 x m`` is the transpose of the
  gradient (:func:`gradient_as_jacobian_transpose`).

:func:`jacobian` computes the 2-D Jacobian with the cheaper autodiff mode. Checking a hand-written
Jacobian is :mod:`lecture6.gradcheck`; ``vec``/``unvec`` live in :mod:`lecture6.matrix_derivative` and
``chain``/``chain_cost`` in :mod:`lecture6.chain_rule`. All of them are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.chain_rule import chain, chain_cost
from lecture6.gradcheck import (
    FD_TOLERANCES,
    TOLERANCES,
    JacobianCheck,
    KinkEntry,
    assert_gradient,
    assert_jacobian,
    check_gradient,
    check_jacobian,
    default_tolerances,
    finite_difference_jacobian,
)
from lecture6.matrix_derivative import unvec, vec

__all__ = [
    # this module
    "f_example", "f_example_jacobian", "f_perspectives", "f_perspectives_dx", "f_perspectives_dw",
    "gradient_as_jacobian_transpose", "jacobian",
    # importable from here as before
    "FD_TOLERANCES", "TOLERANCES", "JacobianCheck", "KinkEntry", "assert_gradient", "assert_jacobian",
    "chain", "chain_cost", "check_gradient", "check_jacobian", "default_tolerances",
    "finite_difference_jacobian", "unvec", "vec",
]

# --- Slide "Jacobian matrices" ----------------------------------------------------------------------


def f_example(x):
    """``f([x1, x2]) = [2 x1 + x2, pi x2, -x1 / x2]``: ``(2,) -> (3,)``."""
    x1, x2 = x[0], x[1]
    return jnp.stack([2 * x1 + x2, jnp.pi * x2, -x1 / x2])


def f_example_jacobian(x):
    """``[[2, 1], [0, pi], [-1/x2, x1/x2^2]]``: ``(3, 2)``, rows = outputs."""
    x1, x2 = x[0], x[1]
    one, zero = jnp.ones_like(x1), jnp.zeros_like(x1)
    return jnp.stack([
        jnp.stack([2 * one, one]),
        jnp.stack([zero, jnp.pi * one]),
        jnp.stack([-1 / x2, x1 / x2**2]),
    ])


# --- Slide "Jacobian matrices ... the same function from different perspectives" -------------------


def f_perspectives(xy, w):
    """``f(x, y; a, b) = 2 a x + b / y`` with ``xy = [x, y]`` and ``w = [a, b]``: a scalar."""
    x, y = xy[0], xy[1]
    a, b = w[0], w[1]
    return 2 * a * x + b / y


def f_perspectives_dx(xy, w):
    """``df/d[x, y] = [2a, -b / y^2]``: ``(1, 2)`` (a, b held constant)."""
    y = xy[1]
    a, b = w[0], w[1]
    return jnp.stack([jnp.stack([2 * a, -b / y**2])])


def f_perspectives_dw(xy, w):
    """``df/d[a, b] = [2x, 1 / y]``: ``(1, 2)`` (x, y held constant)."""
    x, y = xy[0], xy[1]
    return jnp.stack([jnp.stack([2 * x, 1 / y])])


# --- Slide "Jacobian versus gradient" ---------------------------------------------------------------


def gradient_as_jacobian_transpose(f, x):
    """For scalar ``f``: ``(gradient (m,), Jacobian (1, m))``; the slide's claim is ``J = grad^T``."""
    return jax.grad(f)(x), jnp.reshape(jax.jacrev(f)(x), (1, -1))


# --- The Jacobian of any function, by the cheaper autodiff mode -------------------------------------


def jacobian(f: Callable, x, mode: str = "auto") -> jax.Array:
    """The 2-D Jacobian ``d vec[f] / d vec[x]`` of ``f`` at ``x``.

    ``mode="auto"`` picks reverse mode for wide Jacobians (fewer outputs than inputs: one backward pass
    per output) and forward mode otherwise (one forward pass per input); ``"fwd"`` and ``"rev"`` force
    one. Works under ``jax.jit`` (the choice is made from static shapes).
    """
    x = jnp.asarray(x)
    n_out = int(np.prod(jax.eval_shape(f, x).shape))
    n_in = int(x.size)
    if mode == "auto":
        mode = "rev" if n_out < n_in else "fwd"
    if mode not in ("fwd", "rev"):
        raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
    jac_fn = jax.jacrev if mode == "rev" else jax.jacfwd
    return jnp.reshape(jac_fn(f)(x), (n_out, n_in))
