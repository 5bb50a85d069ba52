"""Vectorizing a matrix, and the matrix derivative of a function of ``z = W x``.

* Slide "Vectorizing a matrix": a matrix is turned into a vector **row by row**,
  ``vec[W] = [W11 ... W1m ... Wn1 ... Wnm]`` (:func:`vec`, :func:`unvec`); a function of a matrix, or
  with a matrix output, has the 2-D Jacobian ``d vec[f] / d vec[x]``.
* Same slide: ``f(x; W) = W x`` for a 2x2 ``W`` has ``df/dvec[W] =
  [[x1, x2, 0, 0], [0, 0, x1, x2]]``. **Erratum:** the slide prints the second row as
  ``[0, 0, x3, x4]``; ``x`` is in R^2 and has no ``x3, x4``. Row 2 is ``f2 = w3 x1 + w4 x2``, so its
  partials with respect to ``w3, w4`` are ``x1, x2`` (:func:`slide_dz_dvecW_2x2` keeps the slide's
  version for the test that shows it is wrong).
* Slides "Matrix derivative of a vector-valued function": for ``z = W x`` with ``W`` of shape
  ``(n, m)``, ``dz/dvec[W]`` is block diagonal with ``x^T`` blocks, ``(n, n m)``
  (:func:`dz_dvecW`); with ``dJ/dz = p^T``, ``dJ/dvec[W] = [p1 x^T ... pn x^T]``, which unvectorizes
  to ``grad_W J = p x^T`` (:func:`grad_W_via_chain`, :func:`grad_W`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.chain_rule import chain


def vec(A) -> jax.Array:
    """Row-major vectorization, exactly the slide's ``vec[W] = [W11 ... W1m ... Wn1 ... Wnm]``."""
    return jnp.reshape(jnp.asarray(A), (-1,))


def unvec(v, shape: Sequence[int]) -> jax.Array:
    """Inverse of :func:`vec`: the vector ``v`` laid out row by row into ``shape``."""
    v = jnp.asarray(v)
    shape = tuple(int(s) for s in shape)
    if v.ndim != 1:
        raise ValueError(f"unvec expects a 1-D vector, got shape {v.shape}")
    if v.size != int(np.prod(shape)):
        raise ValueError(f"unvec: a vector of length {v.size} cannot fill shape {shape}")
    return jnp.reshape(v, shape)


def linear_map(W, x):
    """``z = W x``: ``W (n, m)``, ``x (m,)`` -> ``(n,)``."""
    return W @ x


def dz_dvecW(x, n: int):
    """``dz/dvec[W]`` for ``z = W x``: ``(n, n m)``, block diagonal with ``x^T`` in each block.

    Row ``i`` holds ``x^T`` in columns ``i m ... i m + m - 1``: ``z_i`` depends only on row ``i`` of ``W``.
    """
    x = jnp.asarray(x)
    return jnp.kron(jnp.eye(n, dtype=x.dtype), x[None, :])


def dz_dvecW_2x2(x):
    """The slide's 2x2 case, corrected: ``[[x1, x2, 0, 0], [0, 0, x1, x2]]``."""
    x1, x2 = x[0], x[1]
    zero = jnp.zeros_like(x1)
    return jnp.stack([jnp.stack([x1, x2, zero, zero]), jnp.stack([zero, zero, x1, x2])])


def slide_dz_dvecW_2x2(x, x3, x4):
    """The matrix **as printed on the slide**: ``[[x1, x2, 0, 0], [0, 0, x3, x4]]`` (wrong).

    ``x`` is in R^2, so ``x3, x4`` do not exist; they are taken as arguments. The matrix is a correct
    Jacobian only when ``x3 = x1`` and ``x4 = x2``, i.e. when it is the corrected one.
    """
    x1, x2 = x[0], x[1]
    zero = jnp.zeros_like(x1)
    return jnp.stack([jnp.stack([x1, x2, zero, zero]), jnp.stack([zero, zero, x3, x4])])


def grad_W(p, x):
    """``grad_W J = p x^T``: ``(n, m)``, where ``p = (dJ/dz)^T`` ``(n,)`` and ``x (m,)``."""
    return jnp.outer(p, x)


def grad_W_via_chain(p, x):
    """The slide's route: ``dJ/dvec[W] = p^T dz/dvec[W] = [p1 x^T ... pn x^T]``, then unvectorize."""
    p, x = jnp.asarray(p), jnp.asarray(x)
    n, m = p.shape[0], x.shape[0]
    row = chain(p[None, :], dz_dvecW(x, n))  # (1, n m)
    return unvec(vec(row), (n, m))
