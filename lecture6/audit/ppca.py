"""Audit rows for the latent-variable-model slides: PCA as probabilistic PCA, its MLE, sampling,
the posterior and its closed-form normalizer, and the MLE of a multivariate Gaussian.

Each row checks lecture6 code (looked up on its module at call time, so a test can break it) against a
route written here: a dense Gaussian density, an SVD of the data, Monte Carlo with NumPy's generator,
brute-force conditioning or integration, SciPy's multivariate normal, or autodiff.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from lecture6 import data, gaussian, ppca
from lecture6.audit import Check, claim, sized
from lecture6.audit._ref import central_differences

ORDER = 20

PCA = "Principal component analysis (PCA)"
GAUSS = "MLE for a multivariate Gaussian distribution"
TOL = 1e-8  # float64 identities between different routes; observed errors are ~1e-12


def _data(n=400, d=8, q=2, seed=0):
    """``n`` points from a known PPCA model (orthogonal W, column norms 3.0 .. 2.2, sigma2 = 0.3), drawn
    with NumPy; returns ``(X (n, d), W)``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, q)))
    W = Q * np.linspace(3.0, 2.2, q)[None, :]
    b = rng.standard_normal(d)
    return rng.standard_normal((n, q)) @ W.T + b[None, :] + np.sqrt(0.3) * rng.standard_normal((n, d)), W


def _dense_cov(model):
    W, sigma2 = np.asarray(model.W), float(model.sigma2)
    return W @ W.T + sigma2 * np.eye(W.shape[0])


def _eig_desc(S):
    lam, U = np.linalg.eigh(S)
    return lam[::-1], U[:, ::-1]


def _svd_spectrum(X):
    """Eigenvalues (descending) and eigenvectors of the (1/n) covariance from an SVD of the centred data,
    not from an eigensolver of the covariance (the route lecture6 takes)."""
    Xc = X - X.mean(axis=0)[None, :]
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    return s**2 / X.shape[0], Vt.T


@functools.cache
def _optimizer(steps):
    # One optimizer object per step count, so the rows that fit by gradient share one compiled loop.
    return ppca.default_optimizer(steps)


_GRADIENT_STEPS = 600


@claim(PCA, "PCA's k-th principal direction, along which the variance of the projected data is largest "
       "(orthogonal to the first k-1), is the eigenvector of Cov(X, X) = E[(X - E X)(X - E X)^T] with the "
       "k-th largest eigenvalue; that eigenvalue is the projected variance",
       "gradient ascent on the projected variance (ppca.max_variance_directions) on the 8x8 digits vs "
       "np.linalg.eigh of the covariance, k = 1..3: |cos| of the angle and the variances")
def _pca_directions() -> Check:
    # Quick mode: the 8-D synthetic data of the other rows, whose top two eigenvalues stand apart.
    X, k = sized((data.load_digits()[0], 3), (_data()[0], 2))
    V, var = ppca.max_variance_directions(X, k, key=jax.random.key(0))
    V, var = np.asarray(V), np.asarray(var)
    if V.shape != (X.shape[1], k) or var.shape != (k,):
        return Check(None, False, f"got directions {V.shape} and variances {var.shape}")
    lam, U = _eig_desc(np.cov(X, rowvar=False, bias=True))
    angle_err = float(np.max(1.0 - np.abs(np.sum(V * U[:, :k], axis=0))))
    var_err = float(np.max(np.abs(var - lam[:k]) / lam[:k]))
    proj_err = float(np.max(np.abs(np.var(X @ V, axis=0) - var) / var))
    err = max(angle_err, var_err, proj_err)
    return Check(err, err < 1e-8, f"projected variances {np.round(var, 4).tolist()}")


@claim(PCA, "P(x|h) = N(Wh + b, sigma2 I) and P(h) = N(0, I) give P(x) = N(b, W W^T + sigma2 I); "
       "its log-density in O(n d q) (determinant lemma + Woodbury) is exact",
       "ppca.log_likelihood vs scipy.stats' dense log-density of N(b, W W^T + sigma2 I), random W, b, sigma2")
def _marginal() -> Check:
    rng = np.random.default_rng(0)
    err = 0.0
    for d, q in sized([(3, 1), (8, 3), (20, 5)], [(4, 2), (3, 1)]):
        model = ppca.PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                          jnp.asarray(rng.uniform(0.1, 2.0)))
        X = rng.standard_normal((10, d)) * 2
        ours = np.asarray(ppca.log_likelihood(model, X))
        dense = scipy.stats.multivariate_normal(np.asarray(model.b), _dense_cov(model)).logpdf(X)
        err = max(err, float(np.max(np.abs(ours - dense) / np.abs(dense))) if ours.shape == dense.shape else np.inf)
    return Check(err, err < TOL, "relative error")


#: Central differences (step 1e-5) of a mean log-likelihood of size ~10: round-off ~1e-9, truncation
#: ~1e-10. A gradient below this is zero to the precision of the check.
FD_GRAD_TOL = 1e-6


def _fd_gradient(f, theta) -> np.ndarray:
    """Central-difference gradient of the scalar ``f`` at the flat vector ``theta``."""
    return central_differences(lambda t: np.asarray(f(t)).reshape(1), theta, 1e-5)[0]


@claim(PCA, "The MLE for b is the mean of the data",
       "d/db of ppca.log_likelihood at b = mean is 0 for a random W, sigma2 (central differences); the "
       "gradient route, started at a random data point, ends at the mean")
def _mle_b() -> Check:
    X, _ = _data()
    mean = X.mean(axis=0)
    rng = np.random.default_rng(1)
    W, sigma2 = jnp.asarray(rng.standard_normal((8, 2))), jnp.asarray(0.7)
    g = _fd_gradient(lambda b: jnp.mean(ppca.log_likelihood(ppca.PPCA(W, jnp.asarray(b), sigma2), X)), mean)
    fit = ppca.fit_gradient(X, 2, key=jax.random.key(0), steps=_GRADIENT_STEPS, optimizer=_optimizer(_GRADIENT_STEPS))
    err_grad = float(np.max(np.abs(g)))
    err_fit = float(np.max(np.abs(np.asarray(fit.b) - mean)) / np.std(X))
    return Check(max(err_grad, err_fit), err_grad < FD_GRAD_TOL and err_fit < 1e-4,
                 f"|grad| {err_grad:.1e}; gradient-route b vs mean {err_fit:.1e} (in data std)")


@claim(PCA, "The MLE for W is the set of principal eigenvectors from standard PCA, weighted by their "
       "eigenvalues: W = U_q (Lambda_q - sigma2 I)^(1/2), sigma2 = mean discarded eigenvalue",
       "fit_closed_form vs that formula built from an SVD of the centred data (W W^T and sigma2); it is a "
       "stationary point of ppca.log_likelihood in (W, b, sigma2) (central differences); EM and optax "
       "gradient ascent from random starts reach the same log-likelihood and subspace (principal angles)")
def _mle_W() -> Check:
    X, _ = _data()
    n, d = X.shape
    q = 2
    cf = ppca.fit_closed_form(X, q)
    lam, U = _svd_spectrum(np.asarray(X))
    sigma2 = float(np.mean(lam[q:]))
    WWt = U[:, :q] @ np.diag(lam[:q] - sigma2) @ U[:, :q].T  # W W^T: W is defined up to a rotation
    W = np.asarray(cf.W)
    formula = (max(float(np.max(np.abs(W @ W.T - WWt))) / lam[0], abs(float(cf.sigma2) - sigma2) / sigma2)
               if W.shape == (d, q) else np.inf)

    def mean_ll(theta):  # theta = [vec W, b, sigma2]
        model = ppca.PPCA(jnp.asarray(theta[:d * q].reshape(d, q)), jnp.asarray(theta[d * q:-1]),
                          jnp.asarray(theta[-1]))
        return jnp.mean(ppca.log_likelihood(model, X))

    theta = np.concatenate([W.reshape(-1), np.asarray(cf.b), [float(cf.sigma2)]])
    grad = float(np.max(np.abs(_fd_gradient(mean_ll, theta)))) if W.shape == (d, q) else np.inf
    ll_cf = float(jnp.mean(ppca.log_likelihood(cf, X)))
    em = ppca.fit_em(X, q, key=jax.random.key(1), iters=400)
    gd = ppca.fit_gradient(X, q, key=jax.random.key(2), steps=_GRADIENT_STEPS, optimizer=_optimizer(_GRADIENT_STEPS))
    d_ll = max(abs(float(jnp.mean(ppca.log_likelihood(m, X))) - ll_cf) for m in (em, gd))
    angle = max(float(ppca.principal_angles(cf.W, m.W)[-1]) for m in (em, gd))
    err = max(formula, grad, d_ll, angle)
    return Check(err, formula < TOL and grad < FD_GRAD_TOL and d_ll < 1e-7 and angle < 1e-4,
                 f"formula {formula:.1e}, |grad| {grad:.1e}, loglik gap {d_ll:.1e} nats, max angle {angle:.1e} rad")


@claim(PCA, "The weights ensure that P(h) is 0-mean with I-covariance: pushing h ~ N(0, I) through "
       "x = W h + b + noise reproduces the data's mean and its variance along each principal direction",
       "at the closed-form fit, with the principal directions u_k and variances lambda_k from an SVD of the "
       "centred data: u_k^T (W W^T + sigma2 I) u_k = lambda_k (k <= q) and b = mean, exactly; and in standard "
       "errors for 20,000 draws h ~ N(0, I), noise ~ N(0, sigma2 I) (NumPy) pushed through x = W h + b + noise")
def _weights() -> Check:
    X, _ = _data()
    X = np.asarray(X)
    q = 2
    cf = ppca.fit_closed_form(X, q)
    lam, U = _svd_spectrum(X)
    W, b, sigma2 = np.asarray(cf.W), np.asarray(cf.b), float(cf.sigma2)
    C = W @ W.T + sigma2 * np.eye(W.shape[0])
    exact = max(float(np.max(np.abs(np.diag(U[:, :q].T @ C @ U[:, :q]) - lam[:q]))) / lam[0],
                float(np.max(np.abs(b - X.mean(axis=0)))) / np.sqrt(lam[0]))
    n = sized(20000, 4000)
    rng = np.random.default_rng(7)
    Xs = rng.standard_normal((n, q)) @ W.T + b[None, :] + np.sqrt(sigma2) * rng.standard_normal((n, W.shape[0]))
    z_mean = np.abs(Xs.mean(axis=0) - X.mean(axis=0)) / np.sqrt(np.diag(C) / n)
    proj_var = np.var((Xs - b[None, :]) @ U[:, :q], axis=0)
    z_var = np.abs(proj_var - lam[:q]) / (lam[:q] * np.sqrt(2.0 / n))
    z = float(max(z_mean.max(), z_var.max()))
    return Check(exact, exact < TOL and z < 5.0,
                 f"Monte Carlo: largest deviation {z:.1f} standard errors (5 allowed); "
                 f"variances along u_1..u_{q}: {np.round(proj_var, 3).tolist()} vs {np.round(lam[:q], 3).tolist()}")


@claim(PCA, "Generate novel examples: sample h from P(h) = N(0, I), then x from P(x|h) = N(Wh + b, sigma2 I)",
       "40,000 ancestral samples: mean and covariance vs b and W W^T + sigma2 I, in standard errors")
def _sampling() -> Check:
    rng = np.random.default_rng(2)
    d, q, n = 5, 2, sized(40000, 5000)
    model = ppca.PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                      jnp.asarray(0.5))
    X = np.asarray(ppca.sample(model, jax.random.key(3), n))
    C = _dense_cov(model)
    z_mean = np.abs(X.mean(axis=0) - np.asarray(model.b)) / np.sqrt(np.diag(C) / n)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    z_cov = np.abs(np.cov(X, rowvar=False) - C) / se_cov
    z = float(max(z_mean.max(), z_cov.max()))
    return Check(z, z < 5.0, "max error in standard errors (5 allowed)")


@claim(PCA, "By Bayes' rule P(h|x) is Gaussian: N(M^-1 W^T (x - b), sigma2 M^-1), M = W^T W + sigma2 I",
       "ppca.posterior vs brute-force conditioning of the joint Gaussian of (h, x) (dense Schur complement)")
def _posterior() -> Check:
    rng = np.random.default_rng(4)
    d, q = 7, 3
    model = ppca.PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                      jnp.asarray(0.4))
    X = rng.standard_normal((5, d))
    mean, cov = ppca.posterior(model, X)
    W, b = np.asarray(model.W), np.asarray(model.b)
    gain = W.T @ np.linalg.inv(_dense_cov(model))  # Sigma_hx Sigma_xx^-1
    err = max(float(np.max(np.abs(np.asarray(mean) - (X - b) @ gain.T))),
              float(np.max(np.abs(np.asarray(cov) - (np.eye(q) - gain @ W)))))
    return Check(err, err < TOL)


@claim(PCA, "The normalizer Z(x) = integral of P(x|h) P(h) dh, intractable in general, is for PCA a "
       "Gaussian in closed form: Z(x) = P(x) = N(x; b, W W^T + sigma2 I)",
       "2-D numerical integration over h (401 x 401 grid on [-8, 8]^2) at 10 random x vs exp(ppca.log_likelihood)")
def _normalizer() -> Check:
    rng = np.random.default_rng(5)
    d, q = 4, 2
    W, b, sigma2 = rng.standard_normal((d, q)) * 0.8, rng.standard_normal(d), 0.6
    model = ppca.PPCA(jnp.asarray(W), jnp.asarray(b), jnp.asarray(sigma2))
    X = b[None, :] + rng.standard_normal((10, d)) @ np.linalg.cholesky(W @ W.T + sigma2 * np.eye(d)).T
    closed = np.exp(np.asarray(ppca.log_likelihood(model, X)))
    grid = np.linspace(-8.0, 8.0, sized(401, 201))
    H = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, q)
    step = grid[1] - grid[0]
    log_prior = -0.5 * np.sum(H**2, axis=1) - 0.5 * q * np.log(2 * np.pi)
    err = 0.0
    if closed.shape != (X.shape[0],):
        return Check(None, False, f"log_likelihood returned shape {closed.shape} for {X.shape[0]} points")
    for x, p in zip(X, closed):
        r = x[None, :] - (H @ W.T + b[None, :])
        log_lik = -0.5 * np.sum(r**2, axis=1) / sigma2 - 0.5 * d * np.log(2 * np.pi * sigma2)
        Z = np.sum(np.exp(log_lik + log_prior)) * step**q
        err = max(err, abs(Z - p) / p)
    return Check(err, err < 1e-8, "relative error of the numerical integral")


@claim(GAUSS, "The MLE of a multivariate Gaussian is mu = mean, Sigma = (1/n) sum (x - mu)(x - mu)^T: "
       "the derivatives of the log-likelihood vanish there",
       "at gaussian.mle: central differences of the log-likelihood written with scipy.stats (Sigma perturbed "
       "symmetrically) and the hand-derived gradient, relative to the gradient's size at a nearby point; "
       "the 1/(n-1) covariance scores lower")
def _gaussian_mle() -> Check:
    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 3)) + 2.0
    mu, Sigma = (np.asarray(a) for a in gaussian.mle(X))
    m = X.shape[1]

    def total(mu, Sigma):
        return float(np.sum(scipy.stats.multivariate_normal(mu, Sigma).logpdf(X)))

    def fd_grad(mu, Sigma, h=1e-6):
        g = []
        for i in range(m):
            e = np.zeros(m)
            e[i] = h
            g.append((total(mu + e, Sigma) - total(mu - e, Sigma)) / (2 * h))
        for i in range(m):
            for j in range(i, m):
                E = np.zeros((m, m))
                E[i, j] = E[j, i] = h
                g.append((total(mu, Sigma + E) - total(mu, Sigma - E)) / (2 * h))
        return np.array(g)

    scale = float(np.max(np.abs(fd_grad(mu + 0.1, Sigma * 1.1))))
    fd = float(np.max(np.abs(fd_grad(mu, Sigma)))) / scale
    hand = max(float(np.max(np.abs(np.asarray(t)))) for t in gaussian.total_log_likelihood_grad(mu, Sigma, X)) / scale
    n = X.shape[0]
    lower = total(mu, Sigma * n / (n - 1)) < total(mu, Sigma)
    # Central differences with step 1e-6 of a sum of 60 log-densities: round-off ~1e-8 relative.
    return Check(max(fd, hand), fd < 1e-6 and hand < 1e-10 and lower,
                 f"gradient relative to its size one step away: finite differences {fd:.1e}, hand {hand:.1e}")


@claim(GAUSS, "for i.i.d. points the joint P(D | mu, Sigma) factors as the product over the n points: "
       "log P(D) = sum_i log N(x_i; mu, Sigma)",
       "gaussian.total_log_likelihood vs scipy.stats' density of the stacked vector (x_1, ..., x_n) under one "
       "nd-dimensional Gaussian with block-diagonal covariance I_n (x) Sigma")
def _factorization() -> Check:
    rng = np.random.default_rng(5)
    d, n = 3, 6
    A = rng.standard_normal((d, d))
    Sigma = A @ A.T + 0.5 * np.eye(d)
    mu = rng.standard_normal(d)
    X = rng.multivariate_normal(mu, Sigma, size=n)
    joint = float(scipy.stats.multivariate_normal(np.tile(mu, n), np.kron(np.eye(n), Sigma)).logpdf(X.reshape(-1)))
    total = float(gaussian.total_log_likelihood(jnp.asarray(mu), jnp.asarray(Sigma), jnp.asarray(X)))
    err = abs(joint - total) / abs(joint)
    return Check(err, err < TOL, "relative error")
