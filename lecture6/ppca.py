"""Probabilistic PCA, the lecture's simplest latent variable model.

Each data point x in R^d is generated from a low-dimensional code h in R^q (q < d):

    P(h) = N(h; 0, I),        P(x | h, W, b) = N(x; W h + b, sigma2 I),

so the marginal is Gaussian, P(x) = N(x; b, C) with C = W W^T + sigma2 I, and the posterior over the
code is Gaussian too (Bayes' rule with a closed-form normalizer Z(x) = P(x)):

    P(h | x) = N(h; M^-1 W^T (x - b), sigma2 M^-1),    M = W^T W + sigma2 I   (q x q).

What lives here
* :class:`PPCA` ``(W, b, sigma2)``: the parameters, a plain NamedTuple pytree.
* :func:`log_likelihood`: log P(x) per row in O(n d q) -- matrix determinant lemma for log det C,
  Woodbury for C^-1, never a d x d matrix.
* Three ways to the maximum-likelihood fit, which agree (tested):
  :func:`fit_closed_form` (Tipping & Bishop 1999: b = mean, W = principal eigenvectors of the (1/n)
  covariance weighted by sqrt(eigenvalue - sigma2), sigma2 = mean discarded eigenvalue),
  :func:`fit_em` (their EM algorithm; the likelihood never decreases) and :func:`fit_gradient`
  (optax on the negative log-likelihood, the whole loop one jitted ``lax.scan``).
* :func:`sample` (ancestral: h, then x | h), :func:`posterior`, :func:`reconstruct`,
  :func:`heldout_log_likelihood` / :func:`choose_q`, :func:`principal_angles`.

Degenerate data. If the data span at most q dimensions (for example many constant pixels, such as the
border pixels of the digits, together with a large q) every discarded eigenvalue is zero and the
likelihood grows without bound as sigma2 -> 0. The fits then floor sigma2 at ``min_sigma2``
(default: ``SIGMA2_FLOOR`` times the average per-feature variance), so sigma2 stays positive and every
log-likelihood is finite; the result is then the best model with sigma2 >= that floor.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

SIGMA2_FLOOR = 1e-6  # relative to the average per-feature variance; see the module docstring
_BLOCK_ROWS = 2048  # rows per block when accumulating the covariance (bounded memory, BLAS-sized)
# X^T X / n - mean mean^T loses about log10(max_j mean_j^2 / var_j) of float64's 16 digits to
# cancellation; below this ratio (2 digits) the one-product form is used, else the centred blocks.
_UNCENTRED_MAX_RATIO = 1e2


class PPCA(NamedTuple):
    """Probabilistic PCA parameters.

    Model: h ~ N(0, I_q), x | h ~ N(W h + b, sigma2 I_d), hence x ~ N(b, W W^T + sigma2 I_d).

    W: (d, q) loading matrix; b: (d,) offset (the data mean at the MLE); sigma2: scalar noise variance > 0.
    """

    W: jax.Array
    b: jax.Array
    sigma2: jax.Array


# ----------------------------------------------------------------------------------------------------
# input checks


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def _check_q(q, d: int) -> int:
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)):
        raise TypeError(f"q must be an integer, got {q!r}")
    if not 1 <= q < d:
        raise ValueError(f"q must satisfy 1 <= q < d = {d}, got q={q}")
    return int(q)


def _check_data(X, q=None, *, name="X", finite=True) -> np.ndarray:
    """Host-side validation of a data matrix: 2-D, n >= 2, floating, finite (unless the caller checks
    that itself, see :func:`_moments`); q in [1, d)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got ndim={X.ndim} with shape {X.shape}")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"{name} needs at least n=2 rows to fit a covariance, got n={n}")
    if d < 2:
        raise ValueError(f"{name} needs at least d=2 features for a latent space with q < d, got d={d}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if q is not None:
        _check_q(q, d)
    if finite:
        _check_finite(X, name)
    return X


def _check_finite(X: np.ndarray, name: str) -> None:
    # One cheap reduction first; the full elementwise scan only when something is wrong.
    if np.isfinite(X.sum(dtype=np.float64)):
        return
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = bad[0]
        raise ValueError(f"{name} contains NaN or inf ({len(bad)} entries; first at row {i}, "
                         f"column {j}: {X[i, j]})")
    raise ValueError(f"{name} has values too large to sum in float64 (max |x| = {np.abs(X).max():.3g})")


def _check_model(model: PPCA, d: int | None = None) -> None:
    W, b, sigma2 = model
    if jnp.ndim(W) != 2:
        raise ValueError(f"W must be 2-D (d, q), got shape {jnp.shape(W)}")
    if jnp.shape(b) != (jnp.shape(W)[0],):
        raise ValueError(f"b must have shape ({jnp.shape(W)[0]},) to match W {jnp.shape(W)}, "
                         f"got {jnp.shape(b)}")
    if jnp.ndim(sigma2) != 0:
        raise ValueError(f"sigma2 must be a scalar, got shape {jnp.shape(sigma2)}")
    if d is not None and jnp.shape(W)[0] != d:
        raise ValueError(f"X has d={d} features but the model has d={jnp.shape(W)[0]}")
    if not _is_traced(sigma2) and not float(sigma2) > 0.0:
        raise ValueError(f"sigma2 must be positive, got {float(sigma2)}")


def _as_2d(X, model: PPCA):
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got ndim={X.ndim} with shape {X.shape}")
    _check_model(model, X.shape[1])
    return X


# ----------------------------------------------------------------------------------------------------
# the likelihood


@jax.jit
def _log_likelihood(W, b, sigma2, X):
    d, q = W.shape
    dtype = jnp.result_type(W, b, sigma2, X)
    W, b, X = W.astype(dtype), b.astype(dtype), X.astype(dtype)
    sigma2 = jnp.asarray(sigma2, dtype)
    M = W.T @ W + sigma2 * jnp.eye(q, dtype=dtype)
    L = jnp.linalg.cholesky(M)
    r = X - b[None, :]
    # XLA's CPU triangular solve is slow with n right-hand sides, so solve for W M^-1 once (M is
    # well conditioned: its eigenvalues are >= sigma2) and use matrix products. An LU solve, not
    # cho_solve: with jaxlib 0.10.2 on CPU, cho_solve's output feeding the large fused (n, d) products
    # gave wrong results for n >= ~5000 (tests/test_ppca.py::test_log_likelihood_at_scale).
    A = jnp.linalg.solve(M, W.T).T  # W M^-1, (d, q)
    m = r @ A  # posterior mean M^-1 W^T r, (n, q)
    e = r - m @ W.T  # residual of the posterior-mean reconstruction, (n, d)
    # Woodbury: C^-1 = (I - W M^-1 W^T) / sigma2, and r^T C^-1 r = |e|^2 / sigma2 + |m|^2 exactly.
    # Both terms are sums of squares, so nothing cancels (|r|^2 - r^T W m would, in float32).
    quad = jnp.sum(e * e, axis=1) / sigma2 + jnp.sum(m * m, axis=1)
    # Determinant lemma: det C = sigma2^(d-q) det M.
    logdet = (d - q) * jnp.log(sigma2) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (d * math.log(2.0 * math.pi) + logdet + quad)


def log_likelihood(model: PPCA, X) -> jax.Array:
    """log P(x_i) = log N(x_i; b, W W^T + sigma2 I) for each row of ``X`` ``(n, d)`` -> ``(n,)``.

    O(n d q) time and O(n d) memory; stable in float32 and float64. Works under ``jit``/``grad``.
    """
    X = _as_2d(X, model)
    out = _log_likelihood(*model, X)
    if not _is_traced(out, X, model) and not bool(jnp.all(jnp.isfinite(out))):
        _check_finite(np.asarray(X), "X")
        raise ValueError("log-likelihood is not finite although X is; the model is degenerate "
                         f"(sigma2={float(model.sigma2):.3g})")
    return out


def log_likelihood_from_moments(model: PPCA, mean, S) -> jax.Array:
    """Average log-likelihood per point of data with sample mean ``(d,)`` and (1/n) covariance ``(d, d)``.

    Equals ``log_likelihood(model, X).mean()``: -1/2 [d log 2 pi + log det C + tr(C^-1 (S + r r^T))],
    r = mean - b, with the same determinant lemma and Woodbury identities (O(d^2 q)).
    """
    W, b, sigma2 = model
    d, q = W.shape
    M = W.T @ W + sigma2 * jnp.eye(q, dtype=W.dtype)
    L = jnp.linalg.cholesky(M)
    r = mean - b
    SW = S @ W
    trace_CinvS = (jnp.trace(S) - jnp.trace(jnp.linalg.solve(M, W.T @ SW))) / sigma2
    m = jnp.linalg.solve(M, W.T @ r)
    quad = (r @ r - (W.T @ r) @ m) / sigma2
    logdet = (d - q) * jnp.log(sigma2) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (d * math.log(2.0 * math.pi) + logdet + trace_CinvS + quad)


# ----------------------------------------------------------------------------------------------------
# moments and the closed form


def moments(X) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and (1/n) covariance ``(d, d)`` of ``X`` ``(n, d)``, in float64.

    When every feature's mean is small next to its spread (``mean_j^2 <= 100 var_j``), one BLAS ``syrk``
    product ``X^T X / n - mean mean^T`` (at most 2 of 16 digits lost to cancellation). Otherwise rows are
    centred block by block (into one reused buffer) before ``Xc^T Xc``, so precision does not depend on
    the size of the mean, and no centred copy of the data is made either way.
    """
    return _moments(_check_data(X, finite=False), "X")


def _moments(X: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    n, d = X.shape
    mean = X.mean(axis=0, dtype=np.float64)
    if not np.all(np.isfinite(mean)):  # NaN/inf anywhere in X reaches the mean: look closer
        _check_finite(X, name)
    if X.dtype == np.float64 and _cancellation_ratio(X, mean) <= _UNCENTRED_MAX_RATIO:
        # One BLAS syrk over all of X (what scikit-learn's covariance_eigh does), then the rank-one
        # correction: safe here because the mean is small next to the spread of every feature.
        S = X.T @ X
        S /= n
        S -= np.outer(mean, mean)
        return mean, S
    S = np.zeros((d, d))
    buf = np.empty((min(n, _BLOCK_ROWS), d))
    for start in range(0, n, _BLOCK_ROWS):
        Xc = buf[:min(_BLOCK_ROWS, n - start)]
        np.subtract(X[start:start + _BLOCK_ROWS], mean[None, :], out=Xc)
        S += Xc.T @ Xc  # NumPy calls BLAS syrk for a matrix times its own transpose
    S /= n
    return mean, S


def _cancellation_ratio(X: np.ndarray, mean: np.ndarray) -> float:
    """``max_j mean_j^2 / var_j``, the variance estimated on the first block of rows.

    A feature that is constant in that block and has a non-zero mean gives ``inf`` (centre exactly).
    """
    var = X[:_BLOCK_ROWS].var(axis=0)
    m2 = mean * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(var > 0, m2 / np.where(var > 0, var, 1.0), np.where(m2 > 0, np.inf, 0.0))
    return float(np.max(ratio)) if ratio.size else 0.0


def _min_sigma2(eigvals: np.ndarray, min_sigma2) -> float:
    avg_var = float(np.sum(eigvals)) / eigvals.shape[0]
    if not avg_var > 0.0:
        raise ValueError("every feature of X is constant (total variance 0); there is nothing to fit")
    return SIGMA2_FLOOR * avg_var if min_sigma2 is None else float(min_sigma2)


def _closed_form_from_eig(mean, eigvals, eigvecs, q, floor, dtype) -> PPCA:
    """Tipping & Bishop's MLE given the descending eigenpairs of the (1/n) covariance."""
    lam = np.clip(eigvals, 0.0, None)  # round-off can leave tiny negative eigenvalues
    sigma2 = max(float(np.mean(lam[q:])), floor)
    U = eigvecs[:, :q]
    # Fix each column's sign (largest-magnitude entry positive) so fits are reproducible.
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(q)])
    W = U * (signs * np.sqrt(np.clip(lam[:q] - sigma2, 0.0, None)))[None, :]
    return PPCA(jnp.asarray(W.astype(dtype)), jnp.asarray(mean.astype(dtype)),
                jnp.asarray(np.asarray(sigma2, dtype)))


def spectrum(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean (d,), eigenvalues (d,) descending, eigenvectors (d, d))`` of the (1/n) covariance of X."""
    return _spectrum(_check_data(X, finite=False), "X")


def _spectrum(X: np.ndarray, name: str):
    mean, S = _moments(X, name)
    return (mean, *_eig_descending(S))


def _eig_descending(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(d,)`` in descending order and their eigenvectors as columns ``(d, d)``."""
    eigvals, eigvecs = np.linalg.eigh(S)
    return eigvals[::-1].copy(), eigvecs[:, ::-1].copy()


def fit_closed_form(X, q: int, *, min_sigma2: float | None = None) -> PPCA:
    """Maximum-likelihood PPCA of ``X`` ``(n, d)`` with ``q`` latent dimensions (Tipping & Bishop).

    b = mean of X; with lambda_1 >= ... >= lambda_d the eigenvalues of the (1/n) sample covariance and
    U_q the first q eigenvectors: sigma2 = mean(lambda_{q+1..d}), W = U_q (Lambda_q - sigma2 I)^(1/2).
    ``min_sigma2`` (default ``SIGMA2_FLOOR`` x average variance) keeps sigma2 positive for degenerate data.
    """
    X = _check_data(X, q, finite=False)
    mean, eigvals, eigvecs = _spectrum(X, "X")
    return _closed_form_from_eig(mean, eigvals, eigvecs, q, _min_sigma2(eigvals, min_sigma2), X.dtype)


def fit_closed_form_from_moments(mean, S, q: int, *, min_sigma2: float | None = None) -> PPCA:
    """:func:`fit_closed_form` from the sample mean ``(d,)`` and (1/n) covariance ``(d, d)`` (:func:`moments`).

    The MLE depends on the data only through these moments, and so does the average training
    log-likelihood (:func:`log_likelihood_from_moments`): one pass over X serves both.
    """
    mean, S = np.asarray(mean, dtype=np.float64), np.asarray(S, dtype=np.float64)
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or S.shape != (d, d):
        raise ValueError(f"mean must be (d,) and S (d, d); got shapes {mean.shape} and {S.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(S))):
        raise ValueError("mean or S contains NaN or inf")
    q = _check_q(q, d)
    eigvals, eigvecs = _eig_descending(S)
    return _closed_form_from_eig(mean, eigvals, eigvecs, q, _min_sigma2(eigvals, min_sigma2), np.float64)


# ----------------------------------------------------------------------------------------------------
# EM


def em_step(W, sigma2, S):
    """One EM update of Tipping & Bishop (1999, eqs. 29-30) from the (1/n) covariance ``S`` ``(d, d)``.

    M = W^T W + sigma2 I;  W_new = S W (sigma2 I + M^-1 W^T S W)^-1;
    sigma2_new = tr(S - S W M^-1 W_new^T) / d.  Returns ``(W_new (d, q), sigma2_new)``.
    """
    d, q = W.shape
    eye = jnp.eye(q, dtype=W.dtype)
    M = W.T @ W + sigma2 * eye
    SW = S @ W
    A = sigma2 * eye + jnp.linalg.solve(M, W.T @ SW)  # sigma2 I + M^-1 W^T S W (not symmetric)
    W_new = jnp.linalg.solve(A.T, SW.T).T
    sigma2_new = (jnp.trace(S) - jnp.sum(jnp.linalg.solve(M, SW.T).T * W_new)) / d
    return W_new, sigma2_new


def _progress(i, total, value, every, label):
    if every:
        jax.lax.cond((i + 1) % every == 0,
                     lambda: jax.debug.print(label + " {i}/{t}: avg log-likelihood {v:.6f}",
                                             i=i + 1, t=total, v=value),
                     lambda: None)


@jax.jit(static_argnames=("iters", "log_every"))
def _em_loop(W, sigma2, mean, S, floor, iters, log_every):
    b = mean

    def step(carry, i):
        W, sigma2 = carry
        W, sigma2 = em_step(W, sigma2, S)
        sigma2 = jnp.maximum(sigma2, floor)
        ll = log_likelihood_from_moments(PPCA(W, b, sigma2), mean, S)
        _progress(i, iters, ll, log_every, "  EM iteration")
        return (W, sigma2), ll

    (W, sigma2), history = jax.lax.scan(step, (W, sigma2), jnp.arange(iters))
    return W, sigma2, history


def fit_em(X, q: int, *, key, iters: int = 200, min_sigma2: float | None = None,
           return_history: bool = False, log_every: int = 0):
    """Maximum-likelihood PPCA by EM (Tipping & Bishop), ``iters`` steps compiled as one ``lax.scan``.

    ``X`` ``(n, d)``; the random start ``W ~ N(0, s^2/q)`` (s^2 the average variance) comes from ``key``.
    b is the data mean (its MLE, independent of W and sigma2). With ``return_history`` also returns the
    average training log-likelihood after each iteration ``(iters,)``, which never decreases.
    """
    X = _check_data(X, q, finite=False)
    if int(iters) < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    mean, S = _moments(X, "X")
    d = X.shape[1]
    avg_var = float(np.trace(S)) / d
    floor = _min_sigma2(np.diag(S), min_sigma2)
    W0 = jax.random.normal(key, (d, q), dtype=jnp.float64) * math.sqrt(avg_var / q)
    W, sigma2, history = _em_loop(W0, jnp.asarray(avg_var), jnp.asarray(mean), jnp.asarray(S),
                                  jnp.asarray(floor), int(iters), int(log_every))
    model = PPCA(W.astype(X.dtype), jnp.asarray(mean.astype(X.dtype)), sigma2.astype(X.dtype))
    return (model, history) if return_history else model


# ----------------------------------------------------------------------------------------------------
# gradient ascent with optax


def _unconstrained_to_model(params) -> PPCA:
    # sigma2 = exp(log_sigma2) > 0 for every real log_sigma2: no constraint for the optimizer to break.
    return PPCA(params["W"], params["b"], jnp.exp(params["log_sigma2"]))


def negative_mean_log_likelihood(params, X):
    """The gradient route's loss: -mean_i log P(x_i) at unconstrained ``params`` {W, b, log_sigma2}."""
    return -jnp.mean(_log_likelihood(*_unconstrained_to_model(params), X))


@jax.jit(static_argnames=("optimizer", "steps", "log_every"))
def _gradient_loop(params, X, shift, optimizer, steps, log_every):
    grad_fn = jax.value_and_grad(negative_mean_log_likelihood)

    def step(carry, i):
        params, opt_state = carry
        loss, g = grad_fn(params, X)
        updates, opt_state = optimizer.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        # shift = -d log(scale) maps the scaled data's log-likelihood back to the original units.
        _progress(i, steps, shift - loss, log_every, "  gradient step")
        return (params, opt_state), shift - loss

    (params, _), history = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
    return params, history


def default_optimizer(steps: int, learning_rate: float = 0.05) -> optax.GradientTransformation:
    """Adam with a cosine-decayed step size; step sizes are in units of the data's standard deviation."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, int(steps), alpha=1e-3))


def fit_gradient(X, q: int, *, key, steps: int = 2000, optimizer=None, return_history: bool = False,
                 log_every: int = 0):
    """Maximum-likelihood PPCA by gradient ascent: optax ``optimizer`` inside one jitted ``lax.scan``.

    ``X`` ``(n, d)``. The loss is the exact negative mean log-likelihood (:func:`log_likelihood`);
    sigma2 = exp(log_sigma2) stays positive. X is divided by one scalar s (its RMS deviation) before
    optimizing and the fit mapped back (W s, b s, sigma2 s^2), an exact reparametrization that makes
    the optimizer's step size independent of the data's units. ``optimizer`` defaults to
    :func:`default_optimizer`; pass the same object again to reuse the compiled loop.
    Raises ``FloatingPointError`` if the fit diverges. With ``return_history`` also returns the mean
    log-likelihood (in the units of X) at each step ``(steps,)``.
    """
    X = _check_data(X, q)
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n, d = X.shape
    if optimizer is None:
        optimizer = default_optimizer(steps)
    mean = X.mean(axis=0, dtype=np.float64)
    scale = math.sqrt(float(np.mean((X - mean[None, :]) ** 2)))
    if not scale > 0.0:
        raise ValueError("every feature of X is constant (total variance 0); there is nothing to fit")
    Xs = jnp.asarray(X / scale)
    k_W, k_b = jax.random.split(key)
    params = {
        "W": jax.random.normal(k_W, (d, q), dtype=Xs.dtype) / math.sqrt(q),
        # Start b at a random data point, not the mean, so that the route has to find b too.
        "b": Xs[jax.random.randint(k_b, (), 0, n)],
        "log_sigma2": jnp.zeros((), Xs.dtype),
    }
    shift = jnp.asarray(-d * math.log(scale), Xs.dtype)
    params, history = _gradient_loop(params, Xs, shift, optimizer, steps, int(log_every))
    bad = ~np.isfinite(np.asarray(history))
    if bad.any() or not all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(params)):
        first = int(np.argmax(bad)) if bad.any() else steps - 1
        raise FloatingPointError(f"the gradient fit diverged (log-likelihood {history[first]} at step "
                                 f"{first + 1} of {steps}); lower the learning rate")
    model = _unconstrained_to_model(params)
    model = PPCA((model.W * scale).astype(X.dtype), (model.b * scale).astype(X.dtype),
                 (model.sigma2 * scale**2).astype(X.dtype))
    return (model, history) if return_history else model


# ----------------------------------------------------------------------------------------------------
# generation, inference, reconstruction


def sample(model: PPCA, key, n: int) -> jax.Array:
    """Ancestral sampling as on the slide: h ~ N(0, I_q), then x | h ~ N(W h + b, sigma2 I). -> ``(n, d)``."""
    _check_model(model)
    W, b, sigma2 = model
    d, q = W.shape
    k_h, k_x = jax.random.split(key)
    h = jax.random.normal(k_h, (n, q), dtype=W.dtype)
    noise = jax.random.normal(k_x, (n, d), dtype=W.dtype)
    return h @ W.T + b[None, :] + jnp.sqrt(sigma2) * noise


def posterior(model: PPCA, X) -> tuple[jax.Array, jax.Array]:
    """P(h | x) = N(M^-1 W^T (x - b), sigma2 M^-1), M = W^T W + sigma2 I.

    ``X`` ``(n, d)`` -> (means ``(n, q)``, shared covariance ``(q, q)``).
    """
    X = _as_2d(X, model)
    W, b, sigma2 = model
    q = W.shape[1]
    Minv = jnp.linalg.solve(W.T @ W + sigma2 * jnp.eye(q, dtype=W.dtype), jnp.eye(q, dtype=W.dtype))
    Minv = 0.5 * (Minv + Minv.T)
    mean = (X - b[None, :]) @ (W @ Minv)
    return mean, sigma2 * Minv


def reconstruct(model: PPCA, X) -> jax.Array:
    """W E[h | x] + b for each row of ``X`` ``(n, d)``: the reconstruction from the posterior mean."""
    mean, _ = posterior(model, X)
    return mean @ model.W.T + model.b[None, :]


# ----------------------------------------------------------------------------------------------------
# choosing q, comparing subspaces


def heldout_log_likelihood(X_train, X_test, qs, *, min_sigma2: float | None = None) -> np.ndarray:
    """Average held-out log-likelihood of the closed-form fit for each q in ``qs`` -> ``(len(qs),)``.

    One eigendecomposition of the training covariance serves every q.
    """
    X_train = _check_data(X_train, name="X_train", finite=False)
    X_test = _check_data(X_test, name="X_test")
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test has d={X_test.shape[1]} but X_train has d={X_train.shape[1]}")
    d = X_train.shape[1]
    qs = [_check_q(q, d) for q in qs]
    mean, eigvals, eigvecs = _spectrum(X_train, "X_train")
    floor = _min_sigma2(eigvals, min_sigma2)
    return np.array([float(jnp.mean(log_likelihood(
        _closed_form_from_eig(mean, eigvals, eigvecs, q, floor, X_train.dtype), X_test))) for q in qs])


def choose_q(X_train, X_test, qs) -> tuple[int, np.ndarray]:
    """The q in ``qs`` with the highest held-out log-likelihood, and all the scores ``(len(qs),)``."""
    scores = heldout_log_likelihood(X_train, X_test, qs)
    return int(list(qs)[int(np.argmax(scores))]), scores


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spans of ``A`` ``(d, k)`` and ``B`` ``(d, k)``.

    Computed from sines (singular values of (I - Qa Qa^T) Qb), accurate for small angles.
    """
    Qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64))
    Qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64))
    if Qa.shape != Qb.shape:
        raise ValueError(f"A and B must have the same shape, got {np.shape(A)} and {np.shape(B)}")
    sines = np.linalg.svd(Qb - Qa @ (Qa.T @ Qb), compute_uv=False)
    return np.sort(np.arcsin(np.clip(sines, 0.0, 1.0)))


def max_variance_directions(X, k: int, *, key, steps: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Standard PCA by its definition: the ``k`` directions along which projected variance is largest.

    Direction ``j`` maximizes the variance of ``X v`` over unit ``v`` orthogonal to directions
    ``1 .. j-1``; found by projected gradient ascent on the Rayleigh quotient ``v^T S v / v^T v``
    (``jax.grad``, step ``1 / trace(S)``), not by an eigensolver, so it is an independent check of the
    slide's claim that these directions are the eigenvectors of the covariance, in order.
    Returns ``(V (d, k) unit columns, projected variances (k,))``.
    """
    X = _check_data(X, finite=True)
    d = X.shape[1]
    if not 1 <= k <= d:
        raise ValueError(f"k must be in [1, d={d}], got {k}")
    _, S = _moments(X, "X")
    S = jnp.asarray(S)
    step = 1.0 / float(jnp.trace(S))

    def rayleigh(v):
        return v @ S @ v / (v @ v)

    @jax.jit
    def ascend(v, P):
        def body(_, v):
            v = P @ (v + step * jax.grad(rayleigh)(v))
            return v / jnp.linalg.norm(v)

        return jax.lax.fori_loop(0, steps, body, P @ v / jnp.linalg.norm(P @ v))

    V = np.zeros((d, 0))
    for key_j in jax.random.split(key, k):
        P = jnp.eye(d) - jnp.asarray(V @ V.T)  # project out the directions found so far
        v = np.asarray(ascend(jax.random.normal(key_j, (d,), dtype=S.dtype), P))
        V = np.column_stack([V, v])
    return V, np.array([float(rayleigh(jnp.asarray(v))) for v in V.T])


# ----------------------------------------------------------------------------------------------------
# the experiment behind scripts/fit_ppca.py


def fit_all(X_train, X_test, q: int, *, key, em_iters: int, gradient_steps: int,
            learning_rate: float, qs=(), log=print) -> dict:
    """Fit by all three routes, score train and test, and sweep q; returns models and metrics.

    Returns ``{"models": {method: PPCA}, "metrics": {...}, "spectrum": eigenvalues, "qs": [...],
    "heldout": [...]}``; ``metrics`` has per method ``train_loglik``, ``test_loglik`` (average per sample,
    nats) and ``fit_seconds`` (wall time including compilation), plus n_train, n_test, d, q, sigma2.
    """
    X_train = _check_data(X_train, q, name="X_train")
    X_test = _check_data(X_test, name="X_test")
    k_em, k_grad = jax.random.split(key)
    fits = {
        "closed_form": lambda: fit_closed_form(X_train, q),
        "em": lambda: fit_em(X_train, q, key=k_em, iters=em_iters, log_every=max(em_iters // 5, 1)),
        "gradient": lambda: fit_gradient(
            X_train, q, key=k_grad, steps=gradient_steps,
            optimizer=default_optimizer(gradient_steps, learning_rate),
            log_every=max(gradient_steps // 5, 1)),
    }
    models, metrics = {}, {}
    for method, fit in fits.items():
        log(f"fitting {method} ...")
        start = time.perf_counter()
        model = jax.block_until_ready(fit())
        seconds = time.perf_counter() - start
        models[method] = model
        metrics[method] = {
            "train_loglik": float(jnp.mean(log_likelihood(model, X_train))),
            "test_loglik": float(jnp.mean(log_likelihood(model, X_test))),
            "fit_seconds": seconds,
            "sigma2": float(model.sigma2),
        }
        log(f"  {method}: train {metrics[method]['train_loglik']:.4f}  "
            f"test {metrics[method]['test_loglik']:.4f} nats/sample  ({seconds:.2f} s)")
    ref = models["closed_form"].W
    for method in ("em", "gradient"):
        metrics[method]["max_principal_angle_vs_closed_form"] = float(
            principal_angles(ref, models[method].W)[-1])
    n_train, d = X_train.shape
    qs = [int(k) for k in qs if 1 <= int(k) < d]
    log(f"held-out log-likelihood for q in {qs} ...")
    heldout = heldout_log_likelihood(X_train, X_test, qs) if qs else np.zeros(0)
    _, eigvals, _ = spectrum(X_train)
    metrics.update(n_train=n_train, n_test=int(X_test.shape[0]), d=d, q=q,
                   sigma2=float(models["closed_form"].sigma2))
    if qs:
        metrics["best_q_heldout"] = qs[int(np.argmax(heldout))]
    return {"models": models, "metrics": metrics, "spectrum": eigvals, "qs": qs,
            "heldout": heldout.tolist()}
