"""The chain rule of multivariate calculus: the slides' worked example, and products of Jacobians.

Each function sits next to its hand-written Jacobian (``*_jacobian``), in the lecture's layout:
rows are the outputs of ``f``, columns its inputs.

* Slide "Chain rule ...: example": ``f(x) = x1 - 2 x2 + x3/4`` and ``g(x) = [x1 + 2 x2, x2, -x1 + 3]``,
  whose composition is ``3/4 (x1 + 1)`` with Jacobian ``[3/4, 0]``, by substitution and by the chain
  rule (:func:`f_chain`, :func:`g_chain`, :func:`fg_substituted`).
* Slide "Chain rule ... arbitrarily deep compositions": ``f o g o h`` with a non-linear ``h``
  (:func:`h_chain`), whose Jacobian is ``df/dg dg/dh dh/dx``.
* Slide "applying the chain rule is equivalent to multiplying a sequence of Jacobian matrices":
  :func:`chain` multiplies Jacobians given outermost first, in the cheapest order (matrix-chain dynamic
  programming); :func:`chain_cost` counts the multiply-adds of left to right (reverse mode), right to
  left (forward mode) and the optimal order.

The slide "Jacobian matrices" (``f_example``, the two perspectives of ``2 a x + b / y``, Jacobian versus
gradient) lives in :mod:`lecture6.jacobian`; its names are still importable from here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp

# --- Slide "Chain rule of multivariate calculus: example" -------------------------------------------


def f_chain(x):
    """``f([x1, x2, x3]) = [x1 - 2 x2 + x3/4]``: ``(3,) -> (1,)`` (a vector of one entry, as on the slide)."""
    return jnp.stack([x[0] - 2 * x[1] + x[2] / 4])


def f_chain_jacobian(x):
    """``df/dg = [1, -2, 1/4]``: ``(1, 3)``, constant."""
    return jnp.array([[1.0, -2.0, 0.25]], dtype=x.dtype)


def g_chain(x):
    """``g([x1, x2]) = [x1 + 2 x2, x2, -x1 + 3]``: ``(2,) -> (3,)``."""
    return jnp.stack([x[0] + 2 * x[1], x[1], -x[0] + 3])


def g_chain_jacobian(x):
    """``dg/dx = [[1, 2], [0, 1], [-1, 0]]``: ``(3, 2)``, constant."""
    return jnp.array([[1.0, 2.0], [0.0, 1.0], [-1.0, 0.0]], dtype=x.dtype)


def fg_substituted(x):
    """``f(g(x))`` simplified by substitution: ``x1 + 2 x2 - 2 x2 + (-x1 + 3)/4 = 3/4 (x1 + 1)``."""
    return jnp.stack([0.75 * (x[0] + 1)])


def fg_jacobian(x):
    """``d(f o g)/dx = [3/4, 0]``: ``(1, 2)``."""
    return jnp.array([[0.75, 0.0]], dtype=x.dtype)


# --- Slide "... generalizes to arbitrarily deep compositions" ---------------------------------------
# The slide states f o g o h without a concrete h; a non-linear one makes the point that each Jacobian
# is evaluated at its own input (dg/dh at h(x), df/dg at g(h(x))).


def h_chain(x):
    """``h([x1, x2]) = [x1 x2, sin x1]``: ``(2,) -> (2,)``, non-linear."""
    return jnp.stack([x[0] * x[1], jnp.sin(x[0])])


def h_chain_jacobian(x):
    """``dh/dx = [[x2, x1], [cos x1, 0]]``."""
    return jnp.stack([jnp.stack([x[1], x[0]]), jnp.stack([jnp.cos(x[0]), jnp.zeros_like(x[0])])])


def fgh(x):
    """``f(g(h(x)))``: ``(2,) -> (1,)``."""
    return f_chain(g_chain(h_chain(x)))


def fgh_jacobian_factors(x):
    """The chain rule's factors, outermost first: ``(df/dg at g(h(x)), dg/dh at h(x), dh/dx at x)``."""
    hx = h_chain(x)
    return f_chain_jacobian(g_chain(hx)), g_chain_jacobian(hx), h_chain_jacobian(x)


# --- The chain rule as a product of Jacobians, in the cheapest order --------------------------------


def _dims(shapes: Sequence[tuple[int, int]]) -> list[int]:
    if len(shapes) == 0:
        raise ValueError("chain needs at least one Jacobian")
    dims = [int(shapes[0][0])]
    for k, (r, c) in enumerate(shapes):
        if int(r) != dims[-1]:
            raise ValueError(
                f"chain: Jacobian {k} has {r} rows but Jacobian {k - 1} has {dims[-1]} columns; give the "
                "Jacobians outermost first (df/dg, dg/dh, dh/dx), each 2-D with rows = outputs"
            )
        dims.append(int(c))
    return dims


@functools.lru_cache(maxsize=256)
def _matrix_chain(dims: tuple[int, ...]) -> tuple[int, tuple]:
    """Optimal cost and split table of the matrix-chain product for ``dims`` (classic DP)."""
    k = len(dims) - 1
    cost = [[0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    for length in range(2, k + 1):
        for i in range(k - length + 1):
            j = i + length - 1
            best, arg = None, None
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if best is None or c < best:
                    best, arg = c, s
            cost[i][j], split[i][j] = best, arg
    return cost[0][k - 1], tuple(tuple(r) for r in split)


def _paren(split, i, j) -> str:
    if i == j:
        return f"J{i + 1}"
    s = split[i][j]
    return f"({_paren(split, i, s)} {_paren(split, s + 1, j)})"


def chain_cost(shapes: Sequence[tuple[int, int]]) -> dict:
    """Multiply-add counts of a chain of Jacobians given outermost first.

    Returns a dict with ``reverse`` (left to right, ``((J1 J2) J3) ...``: what reverse mode does),
    ``forward`` (right to left, ``J1 (J2 (J3 ...))``: forward mode), ``optimal`` (matrix-chain
    dynamic programming) and ``order`` (the optimal parenthesization, ``J1`` outermost).
    """
    dims = _dims(shapes)
    k = len(dims) - 1
    reverse = sum(dims[0] * dims[i] * dims[i + 1] for i in range(1, k))
    forward = sum(dims[i - 1] * dims[i] * dims[k] for i in range(1, k))
    optimal, split = _matrix_chain(tuple(dims))
    return {"reverse": reverse, "forward": forward, "optimal": optimal, "order": _paren(split, 0, k - 1)}


def chain(*jacobians) -> jax.Array:
    """The Jacobian of a composition from the Jacobians of its parts, given outermost first.

    ``chain(df_dg, dg_dh, dh_dx)`` is ``df_dg @ dg_dh @ dh_dx`` (the slide's chain rule), multiplied in
    the cheapest order. The order matters for cost only: the chain rule in the *reverse* order of
    factors (``dh_dx @ dg_dh @ df_dg``) is wrong, and usually not even defined.
    """
    Js = [jnp.asarray(J) for J in jacobians]
    for k, J in enumerate(Js):
        if J.ndim != 2:
            raise ValueError(f"chain: Jacobian {k} must be 2-D (rows = outputs), got shape {J.shape}")
    dims = _dims([J.shape for J in Js])
    _, split = _matrix_chain(tuple(dims))

    def mult(i, j):
        if i == j:
            return Js[i]
        s = split[i][j]
        return mult(i, s) @ mult(s + 1, j)

    return mult(0, len(Js) - 1)


# --- Old import paths -------------------------------------------------------------------------------
# The "Jacobian matrices" example used to live here. lecture6.jacobian imports this module, so the
# names are looked up lazily (PEP 562) rather than imported at the top, which would be circular.
_MOVED_TO_JACOBIAN = frozenset({
    "f_example", "f_example_jacobian", "gradient_as_jacobian_transpose",
    "f_perspectives", "f_perspectives_dx", "f_perspectives_dw",
})


def __getattr__(name: str):
    if name in _MOVED_TO_JACOBIAN:
        return getattr(importlib.import_module("lecture6.jacobian"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
