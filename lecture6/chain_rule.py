"""The slides' worked examples of Jacobian matrices and the multivariate chain rule.

Each function sits next to its hand-written Jacobian (``*_jacobian``), in the lecture's layout:
rows are the outputs of ``f``, columns its inputs.

* Slide "Jacobian matrices": ``f(x1, x2) = [2 x1 + x2, pi x2, -x1 / x2]`` (:func:`f_example`).
* Slide "Chain rule ...: example": ``f(x) = x1 - 2 x2 + x3/4`` and ``g(x) = [x1 + 2 x2, x2, -x1 + 3]``,
  whose composition is ``3/4 (x1 + 1)`` with Jacobian ``[3/4, 0]``, by substitution and by the chain
  rule (:func:`f_chain`, :func:`g_chain`, :func:`fg_substituted`).
* Slide "Chain rule ... arbitrarily deep compositions": ``f o g o h`` with a non-linear ``h``
  (:func:`h_chain`), whose Jacobian is ``df/dg dg/dh dh/dx``.
* Slide "Jacobian versus gradient": for scalar ``f`` the Jacobian ``1 x m`` is the transpose of the
  gradient (:func:`gradient_as_jacobian_transpose`).
* Slide "Jacobian matrices ... different perspectives": ``f(x, y; a, b) = 2 a x + b / y``, differentiated
  with respect to ``(x, y)`` and to ``(a, b)`` (:func:`f_perspectives`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

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


# --- Slide "Jacobian versus gradient" ---------------------------------------------------------------


def gradient_as_jacobian_transpose(f, x):
    """For scalar ``f``: ``(gradient (m,), Jacobian (1, m))``; the slide's claim is ``J = grad^T``."""
    return jax.grad(f)(x), jnp.reshape(jax.jacrev(f)(x), (1, -1))


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
