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
* Data larger than memory: :func:`moments_chunks` (one pass over an iterable of row chunks, O(d^2)
  memory), :func:`fit_closed_form_chunks`, :func:`average_log_likelihood_chunks` and
  :func:`fit_all_chunks`; :mod:`lecture6.data` reads the chunks from a ``.npy`` or an MNIST IDX file.

Two routes, chosen by the input. A ``jax.Array`` (on any device, or sharded over a mesh) takes the
JAX route: moments, ``jnp.linalg.eigh``, EM, the gradient fit, the log-likelihood and the posterior
are jitted programs on the array's devices, and the data is never copied to the host; the public
functions can themselves be jitted, e.g. ``jax.jit(fit_closed_form, static_argnames="q")``. A NumPy
array (or anything else array-like) takes the host route where it measured faster on a CPU
(``benchmarks/bench_ppca.py``): :func:`moments` is one BLAS ``syrk``, the closed form needs only the q
largest eigenpairs (LAPACK ``syevx``), and :func:`log_likelihood` is one BLAS product ``X W`` per block
of rows, so a large NumPy array is never copied into a JAX buffer. The two routes agree to 1e-10 in
float64 (tested). EM and the gradient fit run on the device either way (EM from the moments; the
gradient fit reads X at every step, so a NumPy X is copied there once). Results keep the input's
floating dtype: float32 in, float32 out (the host route computes in float64 first).

Checks. A concrete input (NumPy, or a ``jax.Array`` outside ``jit``) is checked in full: shape, q,
NaN/inf (the first bad entry is named by row and column, found on the array's device), a positive
total variance, and divergence of the gradient fit. Under ``jit`` only what the shapes tell is
checked (2-D, n >= 2, d >= 2, 1 <= q < d, model shapes); non-finite data or a zero-variance data set
then give NaN/inf results instead of an error.

Degenerate data. If the data span at most q dimensions (for example many constant pixels, such as the
border pixels of the digits, together with a large q) every discarded eigenvalue is zero and the
likelihood grows without bound as sigma2 -> 0. The fits then floor sigma2 at ``min_sigma2``
(default: ``SIGMA2_FLOOR`` times the average per-feature variance), so sigma2 stays positive and every
log-likelihood is finite; the result is then the best model with sigma2 >= that floor.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lecture6 import compile_time

SIGMA2_FLOOR = 1e-6  # relative to the average per-feature variance; see the module docstring
_BLOCK_ROWS = 2048  # rows per block when centring on the host route (bounded extra memory, BLAS-sized)
_LIKELIHOOD_BLOCK_ROWS = 4096  # rows per block of the host log-likelihood (measured: 2048-8192 alike)
# The host log-likelihood's one-product Woodbury form is used for rows losing at most 4 digits (1e4).
_WOODBURY_MAX_RATIO = 1e4
# X^T X / n - mean mean^T loses about log10(max_j mean_j^2 / var_j) of float64's 16 digits to
# cancellation; below this ratio (2 digits) the one-product form is used, else the data are centred.
_UNCENTRED_MAX_RATIO = 1e2
# Full-precision products on the JAX route: a GPU's or TPU's default float32 matmul may use reduced
# precision passes (TF32, bfloat16); on a CPU this changes nothing.
_HIGHEST = jax.lax.Precision.HIGHEST


class PPCA(NamedTuple):
    """Probabilistic PCA parameters.

    Model: h ~ N(0, I_q), x | h ~ N(W h + b, sigma2 I_d), hence x ~ N(b, W W^T + sigma2 I_d).

    W: (d, q) loading matrix; b: (d,) offset (the data mean at the MLE); sigma2: scalar noise variance > 0.
    """

    W: jax.Array
    b: jax.Array
    sigma2: jax.Array


# ----------------------------------------------------------------------------------------------------
# routes and input checks


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def _on_host(X, *others) -> bool:
    """The host (NumPy/BLAS) route: ``X`` is not a ``jax.Array`` and nothing else is being traced."""
    return not isinstance(X, jax.Array) and not _is_traced(*others)


def _check_q(q, d: int) -> int:
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)):
        raise TypeError(f"q must be an integer, got {q!r}")
    if not 1 <= q < d:
        raise ValueError(f"q must satisfy 1 <= q < d = {d}, got q={q}")
    return int(q)


def _check_shape(shape, q, name: str) -> None:
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got ndim={len(shape)} with shape {tuple(shape)}")
    n, d = shape
    if n < 2:
        raise ValueError(f"{name} needs at least n=2 rows to fit a covariance, got n={n}")
    if d < 2:
        raise ValueError(f"{name} needs at least d=2 features for a latent space with q < d, got d={d}")
    if q is not None:
        _check_q(q, d)


def _check_data(X, q=None, *, name="X", finite=True) -> np.ndarray:
    """Host-route validation of a data matrix: 2-D, n >= 2, d >= 2, floating, finite (unless the caller
    checks that itself, see :func:`_moments`); q in [1, d)."""
    X = np.asarray(X)
    _check_shape(X.shape, q, name)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if finite:
        _check_finite(X, name)
    return X


def _jax_data(X, q=None, *, name="X") -> jax.Array:
    """JAX-route validation: only the shapes (static, so this also runs under ``jit``) and the dtype."""
    _check_shape(X.shape, q, name)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    return X


def _non_finite_message(name, count, i, j, value, row_offset) -> str:
    where = "" if row_offset is None else f"; row {row_offset + i} counting the rows of all chunks"
    return f"{name} contains NaN or inf ({count} entries; first at row {i}, column {j}: {value}{where})"


def _check_finite(X: np.ndarray, name: str, row_offset: int | None = None) -> None:
    # One cheap reduction first; the full elementwise scan only when something is wrong.
    if np.isfinite(X.sum(dtype=np.float64)):
        return
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = bad[0]
        raise ValueError(_non_finite_message(name, len(bad), int(i), int(j), X[i, j], row_offset))
    raise ValueError(f"{name} has values too large to sum in float64 (max |x| = {np.abs(X).max():.3g})")


@jax.jit
def _first_non_finite(X):
    bad = ~jnp.isfinite(X)
    k = jnp.argmax(bad.reshape(-1))  # first bad entry in row-major order
    i, j = k // X.shape[1], k % X.shape[1]
    return jnp.sum(bad), i, j, X[i, j], jnp.max(jnp.abs(X))


def _raise_non_finite(X: jax.Array, name: str, row_offset: int | None = None):
    """Name the first NaN/inf of a concrete ``jax.Array``, found on its device (only scalars move)."""
    count, i, j, value, biggest = (v.item() for v in _first_non_finite(X))
    if count:
        raise ValueError(_non_finite_message(name, count, i, j, value, row_offset))
    raise ValueError(f"{name} has values too large to sum in {X.dtype} (max |x| = {biggest:.3g})")


def _to_device(a, dtype) -> jax.Array:
    """A host result as a ``jax.Array`` of ``dtype``: ``jax.device_put`` copies it, where ``jnp.asarray``
    would compile a program for every new shape."""
    return jax.device_put(np.asarray(a, dtype=dtype))


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


def _check_2d(X, model: PPCA):
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got ndim={X.ndim} with shape {X.shape}")
    _check_model(model, X.shape[1])
    return X


def _as_2d(X, model: PPCA) -> jax.Array:
    return _check_2d(jnp.asarray(X), model)


def _check_variance(avg_var) -> None:
    if not _is_traced(avg_var) and not float(avg_var) > 0.0:
        raise ValueError("every feature of X is constant (total variance 0); there is nothing to fit")


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
    m = jnp.dot(r, A, precision=_HIGHEST)  # posterior mean M^-1 W^T r, (n, q)
    e = r - jnp.dot(m, W.T, precision=_HIGHEST)  # residual of the posterior-mean reconstruction, (n, d)
    # Woodbury: C^-1 = (I - W M^-1 W^T) / sigma2, and r^T C^-1 r = |e|^2 / sigma2 + |m|^2 exactly.
    # Both terms are sums of squares, so nothing cancels (|r|^2 - r^T W m would, in float32).
    quad = jnp.sum(e * e, axis=1) / sigma2 + jnp.sum(m * m, axis=1)
    # Determinant lemma: det C = sigma2^(d-q) det M.
    logdet = (d - q) * jnp.log(sigma2) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (d * math.log(2.0 * math.pi) + logdet + quad)


@jax.jit
def _log_likelihood_checked(W, b, sigma2, X):
    """:func:`_log_likelihood` and whether all of it is finite, in one program: checked eagerly, the
    test would compile two more programs for every new shape of X."""
    out = _log_likelihood(W, b, sigma2, X)
    return out, jnp.all(jnp.isfinite(out))


def _log_likelihood_host(W, b, sigma2, X: np.ndarray) -> np.ndarray:
    """:func:`_log_likelihood` in float64 NumPy over blocks of rows: one BLAS product ``X W``, no copy of X.

    Woodbury, written for one product: with r = x - b and p = W^T r (q numbers per row),
    sigma2 r^T C^-1 r = |r|^2 - p^T M^-1 p, where |r|^2 = |x|^2 - 2 x.b + |b|^2. The subtractions lose
    about log10((|x|^2 + |b|^2) / (|r|^2 - p^T M^-1 p)) of float64's 16 digits; rows that would lose
    more than 4 (data almost inside the model's subspace, tiny sigma2, or a mean far from the origin)
    are recomputed with the JAX route's sum-of-squares form |e|^2 / sigma2 + |m|^2, which cancels nothing.
    """
    W, b, sigma2 = np.asarray(W, np.float64), np.asarray(b, np.float64), float(sigma2)
    (n, d), q = X.shape, W.shape[1]
    M = W.T @ W + sigma2 * np.eye(q)
    L = np.linalg.cholesky(M)
    Minv = np.linalg.solve(M, np.eye(q))
    Minv = 0.5 * (Minv + Minv.T)
    logdet = (d - q) * math.log(sigma2) + 2.0 * float(np.sum(np.log(np.diagonal(L))))
    bW, bb = b @ W, float(b @ b)
    quad = np.empty(n)
    rows = min(n, _LIKELIHOOD_BLOCK_ROWS)
    buf = None if X.dtype == np.float64 else np.empty((rows, d))  # float32 blocks are widened here
    for start in range(0, n, rows):
        Xb = X[start:start + rows]
        if buf is not None:
            Xb = buf[:Xb.shape[0]]
            np.copyto(Xb, X[start:start + rows])
        p = Xb @ W
        p -= bW[None, :]  # W^T (x - b)
        xx = np.einsum("ij,ij->i", Xb, Xb)
        num = xx - 2.0 * (Xb @ b) + bb - np.einsum("ij,ij->i", p @ Minv, p)  # sigma2 r^T C^-1 r
        out = quad[start:start + Xb.shape[0]]
        np.divide(num, sigma2, out=out)
        redo = ~((xx + bb) <= _WOODBURY_MAX_RATIO * num)  # also catches NaN
        if redo.any():
            r = Xb[redo] - b[None, :]
            m = r @ (W @ Minv)  # posterior means, (k, q)
            e = r - m @ W.T
            out[redo] = np.einsum("ij,ij->i", e, e) / sigma2 + np.einsum("ij,ij->i", m, m)
    return -0.5 * (d * math.log(2.0 * math.pi) + logdet + quad)


def log_likelihood(model: PPCA, X) -> jax.Array:
    """log P(x_i) = log N(x_i; b, W W^T + sigma2 I) for each row of ``X`` ``(n, d)`` -> ``(n,)``.

    O(n d q) time. A ``jax.Array`` (or a traced model: under ``jit``/``grad``) takes the jitted JAX
    route; a NumPy ``X`` with a concrete model the host route (float64 BLAS over blocks of rows, no
    copy of X). Stable in float32 and float64; the result has the dtype of ``X`` and the model combined.
    """
    if _on_host(X, model):
        X = _check_2d(np.asarray(X), model)
        dtype = jnp.result_type(*model, X)
        with np.errstate(all="ignore"):  # non-finite input is reported below, by name
            out = _log_likelihood_host(*model, X)
        if not np.all(np.isfinite(out)):
            _check_finite(X, "X")
            raise ValueError("log-likelihood is not finite although X is; the model is degenerate "
                             f"(sigma2={float(model.sigma2):.3g})")
        return _to_device(out, dtype)
    X = _as_2d(X, model)
    out, finite = _log_likelihood_checked(*model, X)
    if not _is_traced(out) and not bool(finite):
        if int(_first_non_finite(X)[0]):
            _raise_non_finite(X, "X")
        raise ValueError("log-likelihood is not finite although X is; the model is degenerate "
                         f"(sigma2={float(model.sigma2):.3g})")
    return out


@jax.jit
def _log_likelihood_from_moments(W, b, sigma2, mean, S):
    d, q = W.shape
    M = W.T @ W + sigma2 * jnp.eye(q, dtype=W.dtype)
    L = jnp.linalg.cholesky(M)
    r = mean - b
    SW = jnp.dot(S, W, precision=_HIGHEST)
    trace_CinvS = (jnp.trace(S) - jnp.trace(jnp.linalg.solve(M, W.T @ SW))) / sigma2
    m = jnp.linalg.solve(M, W.T @ r)
    quad = (r @ r - (W.T @ r) @ m) / sigma2
    logdet = (d - q) * jnp.log(sigma2) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return -0.5 * (d * math.log(2.0 * math.pi) + logdet + trace_CinvS + quad)


def log_likelihood_from_moments(model: PPCA, mean, S) -> jax.Array:
    """Average log-likelihood per point of data with sample mean ``(d,)`` and (1/n) covariance ``(d, d)``.

    Equals ``log_likelihood(model, X).mean()``: -1/2 [d log 2 pi + log det C + tr(C^-1 (S + r r^T))],
    r = mean - b, with the same determinant lemma and Woodbury identities (O(d^2 q)).
    """
    return _log_likelihood_from_moments(*model, jnp.asarray(mean), jnp.asarray(S))


# ----------------------------------------------------------------------------------------------------
# moments


def moments(X):
    """Mean ``(d,)`` and (1/n) covariance ``(d, d)`` of ``X`` ``(n, d)``.

    When every feature's mean is small next to its spread (``mean_j^2 <= 100 var_j``, estimated on the
    first 2048 rows) and the data are float64, one product ``X^T X / n - mean mean^T`` (at most 2 of 16
    digits lost to cancellation). Otherwise the data are centred before ``Xc^T Xc``, so precision does
    not depend on the size of the mean. Host route (NumPy ``X``): float64 results, the mean from one BLAS
    ``gemv`` (``1^T X``), one BLAS ``syrk``, and the centring block by block into one reused buffer (no
    centred copy of X). JAX route (``jax.Array``): results in X's dtype, the choice made on the device
    by ``lax.cond``; the centred branch holds ``X - mean`` (one more (n, d) buffer on the device) --
    :func:`moments_chunks` bounds the memory when that does not fit.
    """
    if _on_host(X):
        return _moments(_check_data(X, finite=False), "X")
    X = _jax_data(X)
    mean, S, ok = _moments_jax(X)
    if not _is_traced(ok) and not bool(ok):
        _raise_non_finite(X, "X")
    return mean, S


def _column_means(X: np.ndarray) -> np.ndarray:
    """Float64 column means of ``X`` ``(n, d)``. A float64 X: one BLAS matrix-vector product ``1^T X``,
    which reads X on every core (NumPy's reduction over rows runs on one; measured 2x faster on 2 cores)
    and, like it, sums each column row after row. Other dtypes are widened element by element."""
    n = X.shape[0]
    if X.dtype != np.float64:
        return X.mean(axis=0, dtype=np.float64)
    mean = np.ones(n) @ X
    mean /= n
    return mean


def _moments(X: np.ndarray, name: str, row_offset: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n, d = X.shape
    mean = _column_means(X)
    if not np.all(np.isfinite(mean)):  # NaN/inf anywhere in X reaches the mean: look closer
        _check_finite(X, name, row_offset)
    if X.dtype == np.float64 and _cancellation_ratio(X, mean) <= _UNCENTRED_MAX_RATIO:
        # One BLAS syrk over all of X (what scikit-learn's covariance_eigh does), then the rank-one
        # correction: safe here because the mean is small next to the spread of every feature.
        S = X.T @ X
        S /= n
        S -= np.outer(mean, mean)
        return mean, S
    from scipy.linalg.blas import dsyrk  # scipy is a dependency of jax

    # BLAS syrk accumulates each block into the lower triangle of S in place (beta = 1); NumPy's
    # S += Xc.T @ Xc would also allocate, symmetrize and add a d x d matrix per block.
    S = np.zeros((d, d), order="F")
    buf = np.empty((min(n, _BLOCK_ROWS), d))
    for start in range(0, n, _BLOCK_ROWS):
        Xc = buf[:min(_BLOCK_ROWS, n - start)]
        np.subtract(X[start:start + _BLOCK_ROWS], mean[None, :], out=Xc)
        S = dsyrk(1.0, Xc.T, beta=1.0, c=S, lower=1, overwrite_c=1)  # Xc.T is (d, rows), Fortran order
    S = np.tril(S)
    S += np.tril(S, -1).T
    S /= n
    return mean, S


def _cancellation_ratio(X, mean, xp=np):
    """``max_j mean_j^2 / var_j``, the variance estimated on the first block of rows.

    A feature that is constant in that block and has a non-zero mean gives ``inf`` (centre exactly).
    """
    rows = X[:_BLOCK_ROWS]
    if xp is np:  # np.var makes four passes over the block; this makes three
        dev = rows - rows.mean(axis=0)
        var = np.einsum("ij,ij->j", dev, dev) / rows.shape[0]
    else:
        var = xp.var(rows, axis=0)
    m2 = mean * mean
    positive = var > 0
    ratio = xp.where(positive, m2 / xp.where(positive, var, 1.0), xp.where(m2 > 0, xp.inf, 0.0))
    return xp.max(ratio)


def _moments_jax_body(X):
    """(mean, S, mean is finite) of a ``jax.Array``, in its dtype; the one-product form only in float64."""
    n = X.shape[0]
    mean = jnp.mean(X, axis=0)

    def one_product(X, mean):
        return jnp.dot(X.T, X, precision=_HIGHEST) / n - mean[:, None] * mean[None, :]

    def centred(X, mean):
        Xc = X - mean[None, :]
        return jnp.dot(Xc.T, Xc, precision=_HIGHEST) / n

    if X.dtype == jnp.float64:
        S = jax.lax.cond(_cancellation_ratio(X, mean, jnp) <= _UNCENTRED_MAX_RATIO, one_product, centred,
                         X, mean)
    else:  # float32 has too few digits to spare for the cancellation
        S = centred(X, mean)
    return mean, S, jnp.all(jnp.isfinite(mean))


_moments_jax = jax.jit(_moments_jax_body)


def _merge_moments(n_a, mean_a, M2_a, n_b, mean_b, S_b):
    """Chan, Golub & LeVeque's pairwise update: the mean and M2 = n S of the union of two sets of rows."""
    n = n_a + n_b
    delta = mean_b - mean_a
    return mean_a + delta * (n_b / n), M2_a + S_b * n_b + (delta[:, None] * delta[None, :]) * (n_a * n_b / n)


_merge_moments_jax = jax.jit(_merge_moments)


def moments_chunks(chunks: Iterable) -> tuple:
    """Mean ``(d,)``, (1/n) covariance ``(d, d)`` and row count n of the rows of all ``chunks``, one pass.

    ``chunks`` is any iterable of ``(rows_i, d)`` arrays (NumPy, a memory map, or ``jax.Array``), e.g.
    :func:`lecture6.data.npy_chunks`; only one chunk and O(d^2) numbers are held at a time. Each chunk's
    centred moments come from :func:`moments`' rules (so a large mean costs no precision), and the
    chunks are merged with Chan, Golub & LeVeque's parallel formula: with counts n_a, n_b and
    delta = mean_b - mean_a, mean = mean_a + delta n_b / n and
    M2 = M2_a + M2_b + delta delta^T n_a n_b / n, M2 = n S. NumPy chunks give float64 results;
    ``jax.Array`` chunks are reduced on their device. A chunk of the wrong shape or with a NaN/inf is
    named by its index, and the bad entry by its row in the chunk and in the whole data.
    """
    n, mean, M2, d = 0, None, None, None
    for i, chunk in enumerate(chunks):
        name = f"chunk {i}"
        host = not isinstance(chunk, jax.Array)
        if host:
            chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise ValueError(f"{name} must be 2-D (rows, d), got shape {tuple(chunk.shape)}")
        if d is None:
            d = chunk.shape[1]
        elif chunk.shape[1] != d:
            raise ValueError(f"{name} has {chunk.shape[1]} columns, but chunk 0 had d={d} "
                             f"(shape {tuple(chunk.shape)}, starting at row {n} of the data)")
        n_b = chunk.shape[0]
        if n_b == 0:
            continue
        if host:
            if not np.issubdtype(chunk.dtype, np.floating):
                chunk = chunk.astype(np.float64)
            mean_b, S_b = _moments(chunk, name, row_offset=n)
        else:
            if not jnp.issubdtype(chunk.dtype, jnp.floating):
                chunk = chunk.astype(jnp.result_type(float))
            mean_b, S_b, ok = _moments_jax(chunk)
            if not _is_traced(ok) and not bool(ok):
                _raise_non_finite(chunk, name, row_offset=n)
        if mean is None:
            n, mean, M2 = n_b, mean_b, S_b * n_b
            continue
        merge = _merge_moments if isinstance(M2, np.ndarray) and host else _merge_moments_jax
        mean, M2 = merge(n, mean, M2, n_b, mean_b, S_b)
        n += n_b
    if n < 2:
        raise ValueError(f"the chunks hold n={n} rows in all; at least 2 are needed to fit a covariance")
    return mean, M2 / n, n


# ----------------------------------------------------------------------------------------------------
# the closed form


def _eigh_descending(S, xp=np):
    """Eigenvalues ``(d,)`` in descending order and their eigenvectors as columns ``(d, d)``."""
    eigvals, eigvecs = xp.linalg.eigh(S)
    return eigvals[::-1], eigvecs[:, ::-1]


def _sigma2_floor(avg_var, min_sigma2, dtype):
    """The smallest sigma2 a fit may return (see the module docstring), from the average variance."""
    return SIGMA2_FLOOR * avg_var if min_sigma2 is None else jnp.asarray(min_sigma2, dtype)


def _tipping_bishop(lam_q, U_q, discarded, floor, xp=np):
    """The MLE ``(W (d, q), sigma2)`` from the q largest eigenpairs of the covariance (descending) and
    the mean of the d - q discarded eigenvalues: sigma2 = that mean, W = U_q (Lambda_q - sigma2 I)^(1/2)."""
    sigma2 = xp.maximum(discarded, floor)
    q = U_q.shape[1]
    # Fix each column's sign (largest-magnitude entry positive) so fits are reproducible.
    signs = xp.sign(U_q[xp.argmax(xp.abs(U_q), axis=0), xp.arange(q)])
    W = U_q * (signs * xp.sqrt(xp.clip(lam_q - sigma2, 0.0, None)))[None, :]
    return W, sigma2


def _closed_form_from_eig(eigvals, eigvecs, q: int, floor, xp=np):
    """:func:`_tipping_bishop` from all the eigenpairs, descending."""
    lam = xp.clip(eigvals, 0.0, None)  # round-off can leave tiny negative eigenvalues
    return _tipping_bishop(lam[:q], eigvecs[:, :q], xp.mean(lam[q:]), floor, xp)


@functools.partial(jax.jit, static_argnames="q")
def _closed_form_from_moments_jax(mean, S, q, min_sigma2):
    eigvals, eigvecs = _eigh_descending(S, jnp)
    avg_var = jnp.trace(S) / S.shape[0]
    W, sigma2 = _closed_form_from_eig(eigvals, eigvecs, q, _sigma2_floor(avg_var, min_sigma2, S.dtype), jnp)
    ok = jnp.all(jnp.isfinite(mean)) & jnp.all(jnp.isfinite(S))
    return PPCA(W, mean, sigma2), ok, avg_var


@functools.partial(jax.jit, static_argnames="q")
def _fit_closed_form_jax(X, q, min_sigma2):
    mean, S, _ = _moments_jax_body(X)
    return _closed_form_from_moments_jax(mean, S, q, min_sigma2)


def _closed_form_host(mean, S, q, min_sigma2, dtype) -> PPCA:
    """The closed form from only the q largest eigenpairs (LAPACK ``syevx``, cheaper than all d of
    them): the discarded eigenvalues enter only through their sum, trace(S) minus the kept ones."""
    from scipy.linalg import eigh  # scipy is a dependency of jax

    d = S.shape[0]
    trace = float(np.trace(S))
    _check_variance(trace / d)
    lam_q, U_q = eigh(S, subset_by_index=[d - q, d - 1], driver="evx")
    lam_q, U_q = np.clip(lam_q[::-1], 0.0, None), U_q[:, ::-1]
    floor = float(_sigma2_floor(trace / d, min_sigma2, np.float64))
    W, sigma2 = _tipping_bishop(lam_q, U_q, (trace - float(np.sum(lam_q))) / (d - q), floor)
    return PPCA(_to_device(W, dtype), _to_device(mean, dtype), _to_device(sigma2, dtype))


def spectrum(X) -> tuple:
    """``(mean (d,), eigenvalues (d,) descending, eigenvectors (d, d))`` of the (1/n) covariance of X.

    NumPy results for a NumPy ``X`` (host route), ``jax.Array`` results for a ``jax.Array``.
    """
    mean, S = moments(X)
    return (mean, *_eigh_descending(S, np if _on_host(S) else jnp))


def fit_closed_form(X, q: int, *, min_sigma2: float | None = None) -> PPCA:
    """Maximum-likelihood PPCA of ``X`` ``(n, d)`` with ``q`` latent dimensions (Tipping & Bishop).

    b = mean of X; with lambda_1 >= ... >= lambda_d the eigenvalues of the (1/n) sample covariance and
    U_q the first q eigenvectors: sigma2 = mean(lambda_{q+1..d}), W = U_q (Lambda_q - sigma2 I)^(1/2).
    ``min_sigma2`` (default ``SIGMA2_FLOOR`` x average variance) keeps sigma2 positive for degenerate data.
    A ``jax.Array`` is fitted by one jitted program on its devices (:func:`moments`, then
    ``jnp.linalg.eigh``); ``jax.jit(fit_closed_form, static_argnames="q")`` works. A NumPy array takes
    the host route (BLAS ``syrk``, then LAPACK ``syevx`` for the q largest eigenpairs only: sigma2 needs
    the discarded eigenvalues' sum, trace(S) minus the kept ones). The model has X's floating dtype.
    """
    if _on_host(X):
        X = _check_data(X, q, finite=False)
        mean, S = _moments(X, "X")
        return _closed_form_host(mean, S, q, min_sigma2, X.dtype)
    X = _jax_data(X, q)
    model, ok, avg_var = _fit_closed_form_jax(X, q, min_sigma2)
    if not _is_traced(ok):
        if not bool(ok):
            _raise_non_finite(X, "X")
        _check_variance(avg_var)
    return model


def _check_moments(mean, S) -> int:
    d = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or S.shape != (d, d):
        raise ValueError(f"mean must be (d,) and S (d, d); got shapes {mean.shape} and {S.shape}")
    return d


def fit_closed_form_from_moments(mean, S, q: int, *, min_sigma2: float | None = None) -> PPCA:
    """:func:`fit_closed_form` from the sample mean ``(d,)`` and (1/n) covariance ``(d, d)`` (:func:`moments`).

    The MLE depends on the data only through these moments, and so does the average training
    log-likelihood (:func:`log_likelihood_from_moments`): one pass over X serves both. NumPy moments
    give a float64 model (host route); ``jax.Array`` moments stay on their device, in their dtype.
    """
    if not isinstance(mean, jax.Array) and not isinstance(S, jax.Array):
        mean, S = np.asarray(mean, dtype=np.float64), np.asarray(S, dtype=np.float64)
        q = _check_q(q, _check_moments(mean, S))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(S))):
            raise ValueError("mean or S contains NaN or inf")
        return _closed_form_host(mean, S, q, min_sigma2, np.float64)
    mean, S = jnp.asarray(mean), jnp.asarray(S)
    dtype = jnp.result_type(mean, S, float)
    mean, S = mean.astype(dtype), S.astype(dtype)
    q = _check_q(q, _check_moments(mean, S))
    model, ok, avg_var = _closed_form_from_moments_jax(mean, S, q, min_sigma2)
    if not _is_traced(ok):
        if not bool(ok):
            raise ValueError("mean or S contains NaN or inf")
        _check_variance(avg_var)
    return model


def fit_closed_form_chunks(chunks: Iterable, q: int, *, min_sigma2: float | None = None) -> PPCA:
    """:func:`fit_closed_form` of the rows of all ``chunks``, one pass, O(d^2) memory (:func:`moments_chunks`)."""
    mean, S, _ = moments_chunks(chunks)
    return fit_closed_form_from_moments(mean, S, q, min_sigma2=min_sigma2)


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
    SW = jnp.dot(S, W, precision=_HIGHEST)
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
        ll = _log_likelihood_from_moments(W, b, sigma2, mean, S)
        _progress(i, iters, ll, log_every, "  EM iteration")
        return (W, sigma2), ll

    (W, sigma2), history = jax.lax.scan(step, (W, sigma2), jnp.arange(iters))
    return W, sigma2, history


def fit_em_from_moments(mean, S, q: int, *, key, iters: int = 200, min_sigma2: float | None = None,
                        return_history: bool = False, log_every: int = 0):
    """:func:`fit_em` from the sample mean ``(d,)`` and (1/n) covariance ``(d, d)``: EM needs no more.

    The model has the moments' dtype (float64 for NumPy moments when 64-bit JAX is on).
    """
    if int(iters) < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    mean, S = jnp.asarray(mean), jnp.asarray(S)
    d = _check_moments(mean, S)
    q = _check_q(q, d)
    avg_var = jnp.trace(S) / d
    _check_variance(avg_var)
    floor = SIGMA2_FLOOR * avg_var if min_sigma2 is None else jnp.asarray(min_sigma2, S.dtype)
    # The random start W ~ N(0, s^2 / q), s^2 the average variance, so W W^T has the data's scale.
    W0 = jax.random.normal(key, (d, q), dtype=S.dtype) * jnp.sqrt(avg_var / q)
    W, sigma2, history = _em_loop(W0, avg_var, mean, S, floor, int(iters), int(log_every))
    model = PPCA(W, mean, sigma2)
    return (model, history) if return_history else model


def fit_em(X, q: int, *, key, iters: int = 200, min_sigma2: float | None = None,
           return_history: bool = False, log_every: int = 0):
    """Maximum-likelihood PPCA by EM (Tipping & Bishop), ``iters`` steps compiled as one ``lax.scan``.

    ``X`` ``(n, d)``; the random start ``W ~ N(0, s^2/q)`` (s^2 the average variance) comes from ``key``.
    b is the data mean (its MLE, independent of W and sigma2). With ``return_history`` also returns the
    average training log-likelihood after each iteration ``(iters,)``, which never decreases. EM needs
    the data only through :func:`moments` (host or JAX route by the type of X); the model has X's
    floating dtype. Jittable with ``q``, ``iters``, ``return_history`` and ``log_every`` static.
    """
    if _on_host(X):
        X = _check_data(X, q, finite=False)
        mean, S = _moments(X, "X")
    else:
        X = _jax_data(X, q)
        mean, S = moments(X)
    out = fit_em_from_moments(mean, S, q, key=key, iters=iters, min_sigma2=min_sigma2,
                              return_history=True, log_every=log_every)
    model = PPCA(*(p.astype(X.dtype) for p in out[0]))
    return (model, out[1]) if return_history else model


# ----------------------------------------------------------------------------------------------------
# gradient ascent with optax


def _unconstrained_to_model(params) -> PPCA:
    # sigma2 = exp(log_sigma2) > 0 for every real log_sigma2: no constraint for the optimizer to break.
    return PPCA(params["W"], params["b"], jnp.exp(params["log_sigma2"]))


def negative_mean_log_likelihood(params, X):
    """The gradient route's loss: -mean_i log P(x_i) at unconstrained ``params`` {W, b, log_sigma2}."""
    return -jnp.mean(_log_likelihood(*_unconstrained_to_model(params), X))


@jax.jit(static_argnames=("q", "optimizer", "steps", "log_every"))
def _gradient_fit(X, key, q, optimizer, steps, log_every):
    """Scale, random start, the optax loop and the map back to X's units: one program."""
    n, d = X.shape
    mean = jnp.mean(X, axis=0)
    scale = jnp.sqrt(jnp.mean((X - mean[None, :]) ** 2))
    Xs = X / scale
    k_W, k_b = jax.random.split(key)
    params = {
        "W": jax.random.normal(k_W, (d, q), dtype=X.dtype) / math.sqrt(q),
        # Start b at a random data point, not the mean, so that the route has to find b too.
        "b": Xs[jax.random.randint(k_b, (), 0, n)],
        "log_sigma2": jnp.zeros((), X.dtype),
    }
    shift = -d * jnp.log(scale)  # maps the scaled data's log-likelihood back to the original units
    grad_fn = jax.value_and_grad(negative_mean_log_likelihood)

    def step(carry, i):
        params, opt_state = carry
        loss, g = grad_fn(params, Xs)
        updates, opt_state = optimizer.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        _progress(i, steps, shift - loss, log_every, "  gradient step")
        return (params, opt_state), shift - loss

    (params, _), history = jax.lax.scan(step, (params, optimizer.init(params)), jnp.arange(steps))
    model = _unconstrained_to_model(params)
    model = PPCA(model.W * scale, model.b * scale, model.sigma2 * scale**2)
    finite = jnp.all(jnp.isfinite(history)) & jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(p)) for p in model]))
    return model, history, scale, finite


@functools.lru_cache(maxsize=64)
def default_optimizer(steps: int, learning_rate: float = 0.05) -> optax.GradientTransformation:
    """Adam with a cosine-decayed step size; step sizes are in units of the data's standard deviation.

    The same ``(steps, learning_rate)`` returns the same object, so :func:`fit_gradient`'s compiled
    loop (the optimizer is a static argument) is reused instead of recompiled.
    """
    return optax.adam(optax.cosine_decay_schedule(learning_rate, int(steps), alpha=1e-3))


def fit_gradient(X, q: int, *, key, steps: int = 2000, optimizer=None, return_history: bool = False,
                 log_every: int = 0):
    """Maximum-likelihood PPCA by gradient ascent: optax ``optimizer`` inside one jitted ``lax.scan``.

    ``X`` ``(n, d)``. The loss is the exact negative mean log-likelihood (:func:`log_likelihood`);
    sigma2 = exp(log_sigma2) stays positive. X is divided by one scalar s (its RMS deviation) before
    optimizing and the fit mapped back (W s, b s, sigma2 s^2), an exact reparametrization that makes
    the optimizer's step size independent of the data's units. ``optimizer`` defaults to
    :func:`default_optimizer` ``(steps)``; the compiled loop is reused for the same optimizer object,
    shapes and dtype. Raises ``FloatingPointError`` if the fit diverges. With ``return_history`` also
    returns the mean log-likelihood (in the units of X) at each step ``(steps,)``. Every step reads
    X, so a NumPy X is copied to the device once; a ``jax.Array`` stays where it is. Jittable with
    ``q``, ``steps``, ``optimizer``, ``return_history`` and ``log_every`` static.
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if _on_host(X):
        X = jnp.asarray(_check_data(X, q))
    else:
        X = _jax_data(X, q)
        if not _is_traced(X) and not bool(jnp.isfinite(jnp.sum(X))):
            _raise_non_finite(X, "X")
    if optimizer is None:
        optimizer = default_optimizer(steps)
    model, history, scale, finite = _gradient_fit(X, key, q, optimizer, steps, int(log_every))
    if not _is_traced(finite):
        _check_variance(scale)
        if not bool(finite):
            bad = ~np.isfinite(np.asarray(history))
            first = int(np.argmax(bad)) if bad.any() else steps - 1
            raise FloatingPointError(f"the gradient fit diverged (log-likelihood {history[first]} at step "
                                     f"{first + 1} of {steps}); lower the learning rate")
    return (model, history) if return_history else model


# ----------------------------------------------------------------------------------------------------
# generation, inference, reconstruction


@jax.jit(static_argnames="n")
def _sample(W, b, sigma2, key, n):
    d, q = W.shape
    k_h, k_x = jax.random.split(key)
    h = jax.random.normal(k_h, (n, q), dtype=W.dtype)
    noise = jax.random.normal(k_x, (n, d), dtype=W.dtype)
    return h @ W.T + b[None, :] + jnp.sqrt(sigma2) * noise


def sample(model: PPCA, key, n: int) -> jax.Array:
    """Ancestral sampling as on the slide: h ~ N(0, I_q), then x | h ~ N(W h + b, sigma2 I). -> ``(n, d)``.

    One jitted program per ``n`` (jittable with ``n`` static).
    """
    _check_model(model)
    return _sample(*model, key, int(n))


@jax.jit
def _posterior(W, b, sigma2, X):
    q = W.shape[1]
    eye = jnp.eye(q, dtype=W.dtype)
    Minv = jnp.linalg.solve(W.T @ W + sigma2 * eye, eye)
    Minv = 0.5 * (Minv + Minv.T)
    mean = jnp.dot(X - b[None, :], W @ Minv, precision=_HIGHEST)
    return mean, sigma2 * Minv


def posterior(model: PPCA, X) -> tuple[jax.Array, jax.Array]:
    """P(h | x) = N(M^-1 W^T (x - b), sigma2 M^-1), M = W^T W + sigma2 I.

    ``X`` ``(n, d)`` -> (means ``(n, q)``, shared covariance ``(q, q)``). Jitted; a ``jax.Array`` stays
    on its devices.
    """
    return _posterior(*model, _as_2d(X, model))


def reconstruct(model: PPCA, X) -> jax.Array:
    """W E[h | x] + b for each row of ``X`` ``(n, d)``: the reconstruction from the posterior mean."""
    mean, _ = posterior(model, X)
    return mean @ model.W.T + model.b[None, :]


# ----------------------------------------------------------------------------------------------------
# choosing q, comparing subspaces


def _models_for_qs(mean, eigvals, eigvecs, qs, floor, dtype) -> list[PPCA]:
    """Closed-form models for several q from one (host) eigendecomposition."""
    out = []
    for q in qs:
        W, sigma2 = _closed_form_from_eig(eigvals, eigvecs, q, floor)
        out.append(PPCA(_to_device(W, dtype), _to_device(mean, dtype), _to_device(sigma2, dtype)))
    return out


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
    mean, S = _moments(X_train, "X_train")
    eigvals, eigvecs = _eigh_descending(S)
    avg_var = float(np.trace(S)) / d
    _check_variance(avg_var)
    models = _models_for_qs(mean, eigvals, eigvecs, qs, float(_sigma2_floor(avg_var, min_sigma2, S.dtype)),
                            X_train.dtype)
    return np.array([float(jnp.mean(log_likelihood(model, X_test))) for model in models])


def choose_q(X_train, X_test, qs) -> tuple[int, np.ndarray]:
    """The q in ``qs`` with the highest held-out log-likelihood, and all the scores ``(len(qs),)``."""
    scores = heldout_log_likelihood(X_train, X_test, qs)
    return int(list(qs)[int(np.argmax(scores))]), scores


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spans of ``A`` ``(d, k)`` and ``B`` ``(d, k)``.

    ``scipy.linalg.subspace_angles`` (Knyazev & Argentati), sorted ascending. When every angle is below
    45 degrees -- two fits of the same subspace -- they come from sines and are accurate down to tiny
    angles; when some angle exceeds 45 degrees, scipy (1.17) takes the smaller ones from cosines too,
    accurate only to ~1e-8 rad (tests/test_ppca.py::test_principal_angles_recover_known_angles).
    """
    from scipy.linalg import subspace_angles  # scipy is a dependency of jax

    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {A.shape} and {B.shape}")
    return np.sort(subspace_angles(A, B))


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
    _, S_host = _moments(X, "X")
    S = jnp.asarray(S_host)
    step = np.asarray(1.0 / float(np.trace(S_host)), dtype=S.dtype)
    starts = np.asarray(jax.random.normal(key, (k, d), dtype=S.dtype))
    V = np.zeros((d, 0))
    for j in range(k):
        P = np.eye(d) - V @ V.T  # project out the directions found so far
        V = np.column_stack([V, np.asarray(_ascend(starts[j], jnp.asarray(P), S, step, int(steps)))])
    return V, np.einsum("ij,ik,kj->j", V, S_host, V) / np.einsum("ij,ij->j", V, V)


@functools.partial(jax.jit, static_argnames="steps")
def _ascend(v, P, S, step, steps):
    """``steps`` of projected gradient ascent on the Rayleigh quotient ``v^T S v / v^T v`` from ``P v``
    (unit length after each step). Module-level, with ``S`` and the step size as arguments, so every
    call with the same shapes reuses one compiled program."""

    def rayleigh(v):
        return v @ S @ v / (v @ v)

    def body(_, v):
        v = P @ (v + step * jax.grad(rayleigh)(v))
        return v / jnp.linalg.norm(v)

    return jax.lax.fori_loop(0, steps, body, P @ v / jnp.linalg.norm(P @ v))


# ----------------------------------------------------------------------------------------------------
# the experiment behind scripts/fit_ppca.py


def _seconds(total: float, compiling: float) -> str:
    return f"{total:.2f} s, {compiling:.2f} s of it compiling"


def fit_all(X_train, X_test, q: int, *, key, em_iters: int, gradient_steps: int,
            learning_rate: float, qs=(), log=print) -> dict:
    """Fit by all three routes, score train and test, and sweep q; returns models and metrics.

    Returns ``{"models": {method: PPCA}, "metrics": {...}, "spectrum": eigenvalues, "qs": [...],
    "heldout": [...]}``; ``metrics`` has per method ``train_loglik``, ``test_loglik`` (average per sample,
    nats), ``fit_seconds`` (wall time including compilation) and ``compile_seconds`` (the part of it JAX
    spent tracing and compiling, :mod:`lecture6.compile_time`; 0 for a program already compiled), plus
    n_train, n_test, d, q, sigma2.
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
        with compile_time.measure() as spent:
            model = jax.block_until_ready(fit())
        seconds = time.perf_counter() - start
        models[method] = model
        metrics[method] = {
            "train_loglik": float(jnp.mean(log_likelihood(model, X_train))),
            "test_loglik": float(jnp.mean(log_likelihood(model, X_test))),
            "fit_seconds": seconds,
            "compile_seconds": spent.seconds,
            "sigma2": float(model.sigma2),
        }
        log(f"  {method}: train {metrics[method]['train_loglik']:.4f}  "
            f"test {metrics[method]['test_loglik']:.4f} nats/sample  ({_seconds(seconds, spent.seconds)})")
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


# ----------------------------------------------------------------------------------------------------
# data larger than memory: row chunks


def _sum_log_likelihoods(models, chunks: Iterable) -> tuple[np.ndarray, int]:
    """Sum over all rows of ``chunks`` of each model's log-likelihood (float64), and the row count."""
    total, n = np.zeros(len(models)), 0
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, jax.Array):
            chunk = np.asarray(chunk)
        if chunk.ndim != 2:
            raise ValueError(f"chunk {i} must be 2-D (rows, d), got shape {tuple(chunk.shape)}")
        if chunk.shape[0] == 0:
            continue
        try:
            for k, model in enumerate(models):  # (rows,) values to the host, summed in float64
                total[k] += np.sum(np.asarray(log_likelihood(model, chunk)), dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"chunk {i} (starting at row {n} of the data): {exc}") from None
        n += chunk.shape[0]
    if n == 0:
        raise ValueError("the chunks hold no rows")
    return total, n


def average_log_likelihood_chunks(model: PPCA, chunks: Iterable) -> tuple[float, int]:
    """``(mean log-likelihood per row, row count)`` over all rows of ``chunks``, one pass, one chunk held."""
    total, n = _sum_log_likelihoods([model], chunks)
    return float(total[0]) / n, n


def fit_all_chunks(train_chunks: Callable[[], Iterable], test_chunks: Callable[[], Iterable], q: int, *,
                   key, em_iters: int, qs=(), log=print) -> dict:
    """:func:`fit_all` for data read chunk by chunk: the closed form and EM, both from the moments.

    ``train_chunks`` and ``test_chunks`` are callables that return a fresh iterable of row chunks each
    time they are called (e.g. ``lambda: data.npy_chunks(path, key=k, part="train")``). One pass over
    the training chunks gives the moments; the fits and the average training log-likelihoods follow
    from them (:func:`log_likelihood_from_moments`); one pass over the held-out chunks scores both fits
    and every q in ``qs``. The gradient route needs the data at every step and is left out. Returns the
    same dictionary as :func:`fit_all` (methods ``closed_form`` and ``em``).
    """
    log("moments of the training rows (one pass) ...")
    start = time.perf_counter()
    mean, S, n_train = moments_chunks(train_chunks())
    moments_seconds = time.perf_counter() - start
    d = mean.shape[0]
    q = _check_q(q, d)
    fits = {"closed_form": lambda: fit_closed_form_from_moments(mean, S, q),
            "em": lambda: fit_em_from_moments(mean, S, q, key=key, iters=em_iters,
                                              log_every=max(em_iters // 5, 1))}
    models, metrics = {}, {}
    for method, fit in fits.items():
        log(f"fitting {method} ...")
        start = time.perf_counter()
        with compile_time.measure() as spent:
            models[method] = model = jax.block_until_ready(fit())
        metrics[method] = {"train_loglik": float(log_likelihood_from_moments(model, mean, S)),
                           "fit_seconds": moments_seconds + time.perf_counter() - start,
                           "compile_seconds": spent.seconds,
                           "sigma2": float(model.sigma2)}
    metrics["em"]["max_principal_angle_vs_closed_form"] = float(
        principal_angles(models["closed_form"].W, models["em"].W)[-1])
    eigvals, eigvecs = _eigh_descending(np.asarray(S, np.float64))
    floor = SIGMA2_FLOOR * float(np.trace(np.asarray(S, np.float64))) / d
    qs = [int(k) for k in qs if 1 <= int(k) < d]
    log(f"held-out log-likelihood of {list(fits)} and q in {qs} (one pass) ...")
    sweep = _models_for_qs(np.asarray(mean, np.float64), eigvals, eigvecs, qs, floor, np.float64)
    totals, n_test = _sum_log_likelihoods([models["closed_form"], models["em"], *sweep], test_chunks())
    for k, method in enumerate(fits):
        metrics[method]["test_loglik"] = float(totals[k]) / n_test
        log(f"  {method}: train {metrics[method]['train_loglik']:.4f}  "
            f"test {metrics[method]['test_loglik']:.4f} nats/sample  "
            f"({_seconds(metrics[method]['fit_seconds'], metrics[method]['compile_seconds'])})")
    heldout = totals[2:] / n_test
    metrics.update(n_train=int(n_train), n_test=n_test, d=d, q=q, sigma2=float(models["closed_form"].sigma2))
    if qs:
        metrics["best_q_heldout"] = qs[int(np.argmax(heldout))]
    return {"models": models, "metrics": metrics, "spectrum": eigvals, "qs": qs, "heldout": heldout.tolist()}
