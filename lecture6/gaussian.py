"""MLE for a multivariate Gaussian distribution (the slide of that name).

For data x^(1..n) in R^m, the Gaussian likelihood of one point is

    N(x; mu, Sigma) = (2 pi)^(-m/2) det(Sigma)^(-1/2) exp(-1/2 (x - mu)^T Sigma^-1 (x - mu)),

and, the points being independent, the log-likelihood of the data set is the sum over points.
Setting its derivatives to zero ("we can use differential calculus") gives the MLE

    mu = (1/n) sum_i x_i,        Sigma = (1/n) sum_i (x_i - mu)(x_i - mu)^T.

* ``logpdf(X, mu, Sigma)``: per-point log-density through a Cholesky factor (no inverse, no det).
* ``total_log_likelihood`` and its hand-derived gradient ``total_log_likelihood_grad`` side by side.
* ``mle(X)``: the closed-form maximizer above (note the 1/n, not the unbiased 1/(n-1)).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _check_shapes(X, mu, Sigma):
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, m), got shape {X.shape}")
    m = X.shape[1]
    if mu.shape != (m,):
        raise ValueError(f"mu must have shape ({m},) to match X {X.shape}, got {mu.shape}")
    if Sigma.shape != (m, m):
        raise ValueError(f"Sigma must have shape ({m}, {m}) to match X {X.shape}, got {Sigma.shape}")


def _raise_if_not_pd(ok, Sigma) -> None:
    if not _is_traced(ok) and not bool(ok):
        eig_min = float(np.linalg.eigvalsh(np.asarray(Sigma))[0])
        raise ValueError(f"Sigma is not positive definite (smallest eigenvalue {eig_min:.3g})")


@jax.jit
def _logpdf(X, mu, Sigma):
    m = X.shape[1]
    L = jnp.linalg.cholesky(Sigma)  # NaN when Sigma is not positive definite
    # Sigma = L L^T, so (x-mu)^T Sigma^-1 (x-mu) = |L^-1 (x-mu)|^2 and log det Sigma = 2 sum log L_jj.
    # (L^-1 is formed once: XLA's CPU triangular solve is slow with n right-hand sides.)
    L_inv = solve_triangular(L, jnp.eye(m, dtype=L.dtype), lower=True)
    z = (X - mu[None, :]) @ L_inv.T  # rows L^-1 (x_i - mu), (n, m)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    out = -0.5 * (m * math.log(2.0 * math.pi) + logdet + jnp.sum(z * z, axis=1))
    return out, jnp.all(jnp.isfinite(L))


def logpdf(X, mu, Sigma):
    """log N(x_i; mu, Sigma) for each row of ``X`` ``(n, m)``; ``mu`` ``(m,)``, ``Sigma`` ``(m, m)`` -> ``(n,)``."""
    X, mu, Sigma = jnp.asarray(X), jnp.asarray(mu), jnp.asarray(Sigma)
    _check_shapes(X, mu, Sigma)
    out, ok = _logpdf(X, mu, Sigma)
    _raise_if_not_pd(ok, Sigma)
    return out


def total_log_likelihood(mu, Sigma, X):
    """sum_i log N(x_i; mu, Sigma): params first, data ``X`` ``(n, m)`` last; a scalar."""
    return jnp.sum(logpdf(X, mu, Sigma))


@jax.jit
def _total_log_likelihood_grad(mu, Sigma, X):
    n = X.shape[0]
    L = jnp.linalg.cholesky(Sigma)
    r = X - mu[None, :]
    g_mu = cho_solve((L, True), jnp.sum(r, axis=0))
    Sinv = cho_solve((L, True), jnp.eye(Sigma.shape[0], dtype=Sigma.dtype))
    Sinv_A_Sinv = Sinv @ (r.T @ r) @ Sinv
    g_Sigma = 0.5 * (Sinv_A_Sinv - n * Sinv)
    return g_mu, 0.5 * (g_Sigma + g_Sigma.T), jnp.all(jnp.isfinite(L))


def total_log_likelihood_grad(mu, Sigma, X):
    """Hand-derived gradient of :func:`total_log_likelihood` w.r.t. ``(mu, Sigma)``.

    d/dmu    = Sigma^-1 sum_i (x_i - mu)
    d/dSigma = 1/2 (Sigma^-1 A Sigma^-1 - n Sigma^-1),  A = sum_i (x_i - mu)(x_i - mu)^T,
    both zero exactly at the MLE (mu = mean, Sigma = A / n). ``Sigma`` is treated as a symmetric matrix.
    """
    X, mu, Sigma = jnp.asarray(X), jnp.asarray(mu), jnp.asarray(Sigma)
    _check_shapes(X, mu, Sigma)
    g_mu, g_Sigma, ok = _total_log_likelihood_grad(mu, Sigma, X)
    _raise_if_not_pd(ok, Sigma)
    return g_mu, g_Sigma


def mle(X):
    """Maximum-likelihood ``(mu (m,), Sigma (m, m))`` of a Gaussian for data ``X`` ``(n, m)``, ``n >= 2``.

    ``Sigma`` uses 1/n (the MLE), not scikit-learn's or NumPy's unbiased 1/(n-1). Computed in float64
    NumPy with the data centred first, so a large mean costs no precision.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, m), got shape {X.shape}")
    if X.shape[0] < 2:
        raise ValueError(f"need at least 2 points to estimate a covariance, got n={X.shape[0]}")
    if not np.all(np.isfinite(X)):
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X contains NaN or inf (first at row {i}, column {j}: {X[i, j]})")
    mu = X.mean(axis=0, dtype=np.float64)
    r = X - mu[None, :]
    return mu, (r.T @ r) / X.shape[0]
