"""The XOR problem: the lecture's 3-layer network, its hand solution, and its nine partial derivatives.

The slide names the parameters of the 2-2-1 network

    W^(1) = [[w1, w2], [w3, w4]],  b^(1) = [b1, b2],  W^(2) = [w5, w6],  b^(2) = [b3]

    yhat = g(x) = w5 sigma(w1 x1 + w2 x2 + b1) + w6 sigma(w3 x1 + w4 x2 + b2) + b3.

``W^(2)`` is stored as the **row** ``[[w5, w6]]`` (shape ``(1, 2)``), so that ``yhat = W^(2) h + b^(2)``
is defined. (The slide defines ``W^(2)`` as the column ``[w5; w6]``, for which ``W^(2) sigma(...)`` is a
(2x1)(2x1) product and undefined; its next line writes ``[w5 w6]^T``, the row, which is what is meant.)

Facts, each computed here and checked in the tests and the audit:

* With the slide's ``W^(1) = [[2, 2], [1, 1]]``, ``b^(1) = [-1, -1]`` and ReLU, the hidden points are
  ``h(0,0) = (0,0)``, ``h(0,1) = h(1,0) = (1,0)``, ``h(1,1) = (3,1)``: the two **positive** points
  (targets 1) land on one hidden point, and the two negatives stay apart. (The slide says the two
  negative points are collapsed; it is the positive ones.) The three hidden points are linearly
  separable, and ``W^(2) = [1, -3]``, ``b^(2) = 0`` (:func:`solve_output_layer`) gives XOR exactly.
* No affine model ``w^T x + b`` does better than the constant 0.5: the least-squares fit is
  ``w = 0, b = 1/2`` with ``f_MSE = 1/8`` (:func:`best_affine_fit`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.activations import get_activation
from lecture6.data import XOR_X, XOR_Y

#: The slide's hand solution for the hidden layer.
W1_SLIDE = np.array([[2.0, 2.0], [1.0, 1.0]])
b1_SLIDE = np.array([-1.0, -1.0])

#: The names of the nine parameters, in the slide's order.
NAMES = ("w1", "w2", "w3", "w4", "w5", "w6", "b1", "b2", "b3")


def to_params(named: dict) -> list[dict]:
    """The slide's scalars ``{"w1": ..., "b3": ...}`` as MLP params (``W^(2)`` the row ``[[w5, w6]]``)."""
    missing = [k for k in NAMES if k not in named]
    if missing:
        raise ValueError(f"missing XOR parameters {missing}; expected all of {list(NAMES)}")
    p = {k: jnp.asarray(named[k]) for k in NAMES}
    return [
        {"W": jnp.stack([jnp.stack([p["w1"], p["w2"]]), jnp.stack([p["w3"], p["w4"]])]),
         "b": jnp.stack([p["b1"], p["b2"]])},
        {"W": jnp.stack([p["w5"], p["w6"]])[None, :], "b": p["b3"][None]},
    ]


def from_params(params) -> dict:
    """Inverse of :func:`to_params`: the nine named scalars of a 2-2-1 network."""
    W1, b1, W2, b2 = params[0]["W"], params[0]["b"], params[1]["W"], params[1]["b"]
    if (len(params) != 2 or W1.shape != (2, 2) or b1.shape != (2,) or W2.shape != (1, 2)
            or b2.shape != (1,)):
        raise ValueError("expected the 2-2-1 XOR network: W^(1) (2, 2), b^(1) (2,), W^(2) (1, 2), b^(2) (1,)")
    return {"w1": W1[0, 0], "w2": W1[0, 1], "w3": W1[1, 0], "w4": W1[1, 1], "w5": W2[0, 0],
            "w6": W2[0, 1], "b1": b1[0], "b2": b1[1], "b3": b2[0]}


def g(named: dict, X, *, activation: str = "relu") -> jax.Array:
    """``yhat = w5 sigma(w1 x1 + w2 x2 + b1) + w6 sigma(w3 x1 + w4 x2 + b2) + b3`` for ``X (n, 2)``: ``(n,)``."""
    sigma, _ = get_activation(activation)
    X = jnp.asarray(X)
    x1, x2 = X[:, 0], X[:, 1]
    p = named
    return (p["w5"] * sigma(p["w1"] * x1 + p["w2"] * x2 + p["b1"])
            + p["w6"] * sigma(p["w3"] * x1 + p["w4"] * x2 + p["b2"]) + p["b3"])


def partials(named: dict, X, *, activation: str = "relu") -> dict:
    """The nine partials ``d yhat / d p`` written out as on the slides, each ``(n,)`` for ``X (n, 2)``.

    With ``z1 = w1 x1 + w2 x2 + b1`` and ``z2 = w3 x1 + w4 x2 + b2``::

        d yhat/d w1 = w5 sigma'(z1) x1    d yhat/d w2 = w5 sigma'(z1) x2    d yhat/d b1 = w5 sigma'(z1)
        d yhat/d w3 = w6 sigma'(z2) x1    d yhat/d w4 = w6 sigma'(z2) x2    d yhat/d b2 = w6 sigma'(z2)
        d yhat/d w5 = sigma(z1)           d yhat/d w6 = sigma(z2)           d yhat/d b3 = 1

    For ReLU, ``sigma'(z) = 0 if z <= 0 else 1`` (the slide's convention), so e.g.
    ``d yhat/d w1 = 0 if z1 <= 0 else w5 x1``.
    """
    sigma, dsigma = get_activation(activation)
    X = jnp.asarray(X)
    x1, x2 = X[:, 0], X[:, 1]
    p = named
    z1 = p["w1"] * x1 + p["w2"] * x2 + p["b1"]
    z2 = p["w3"] * x1 + p["w4"] * x2 + p["b2"]
    return {
        "w1": p["w5"] * dsigma(z1) * x1,
        "w2": p["w5"] * dsigma(z1) * x2,
        "w3": p["w6"] * dsigma(z2) * x1,
        "w4": p["w6"] * dsigma(z2) * x2,
        "w5": sigma(z1),
        "w6": sigma(z2),
        "b1": p["w5"] * dsigma(z1),
        "b2": p["w6"] * dsigma(z2),
        "b3": jnp.ones_like(x1),
    }


def mse_partials(named: dict, X, y, *, activation: str = "relu") -> dict:
    """``d f_MSE / d p = 1/n sum_i (yhat_i - y_i) d yhat_i / d p`` for each of the nine parameters."""
    y = jnp.asarray(y)
    yhat = g(named, X, activation=activation)
    if y.shape != yhat.shape:
        raise ValueError(f"y must be (n,) = {yhat.shape}, got shape {y.shape}")
    r = yhat - y
    n = y.shape[0]
    return {k: jnp.sum(r * d) / n for k, d in partials(named, X, activation=activation).items()}


def hidden_points(W1=W1_SLIDE, b1=b1_SLIDE, X=XOR_X, *, activation: str = "relu") -> np.ndarray:
    """``h = sigma(W^(1) x + b^(1))`` for each row of ``X`` (default the four XOR points): ``(n, 2)``."""
    sigma, _ = get_activation(activation)
    X = np.asarray(X, dtype=np.float64)
    return np.asarray(sigma(X @ np.asarray(W1).T + np.asarray(b1)[None, :]))


#: Hidden points closer than this are "one point": trained weights collapse a pair exactly up to round-off.
COLLAPSE_TOL = 1e-3


def collapsed_pairs(W1, b1, X=XOR_X, *, activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """For trained first layers ``W1 (S, m, 2)``, ``b1 (S, m)``: whether each network maps the two negative
    points (0,0), (1,1) onto one hidden point, and whether it maps the two positive points (0,1), (1,0) onto
    one -- the slide's "collapse" -- as two boolean ``(S,)`` arrays."""
    sigma, _ = get_activation(activation)
    W1, b1 = np.asarray(W1, np.float64), np.asarray(b1, np.float64)
    H = np.asarray(sigma(np.einsum("nd,shd->snh", np.asarray(X, np.float64), W1) + b1[:, None, :]))  # (S, 4, m)
    negative = np.linalg.norm(H[:, 0] - H[:, 3], axis=1) < COLLAPSE_TOL
    positive = np.linalg.norm(H[:, 1] - H[:, 2], axis=1) < COLLAPSE_TOL
    return negative, positive


def solve_output_layer(H, y) -> tuple[np.ndarray, np.ndarray, float]:
    """Solve ``W^(2) h_i + b^(2) = y_i`` for ``(W^(2) (1, m), b^(2) (1,))`` by least squares.

    Returns ``(W2, b2, max_residual)``; a residual of 0 (to rounding) means the hidden points admit an
    exact affine read-out. Repeated hidden points count once (they must share a target).
    """
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    A = np.concatenate([H, np.ones((H.shape[0], 1))], axis=1)
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = float(np.max(np.abs(A @ sol - y)))
    return sol[None, :-1], sol[-1:], resid


def best_affine_fit(X=XOR_X, y=XOR_Y) -> tuple[np.ndarray, float, float]:
    """The least-squares affine model ``yhat = w^T x + b``: returns ``(w, b, f_MSE)``, ``f_MSE = 1/(2n) sum r^2``.

    On XOR: ``w = 0``, ``b = 1/2``, ``f_MSE = 1/8`` -- exactly the constant prediction 0.5.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    A = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = A @ sol - y
    return sol[:-1], float(sol[-1]), float(np.sum(r * r) / (2 * X.shape[0]))


def slide_solution() -> list[dict]:
    """The full hand solution: the slide's ``W^(1), b^(1)`` and the exact read-out ``W^(2) = [1, -3]``,
    ``b^(2) = 0``."""
    W2, b2, _ = solve_output_layer(hidden_points(), XOR_Y)
    return [{"W": jnp.asarray(W1_SLIDE), "b": jnp.asarray(b1_SLIDE)},
            {"W": jnp.asarray(np.round(W2, 12)), "b": jnp.asarray(np.round(b2, 12))}]
