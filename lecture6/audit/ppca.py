"""Audit rows for the latent-variable-model slides: PCA as probabilistic PCA, its MLE, sampling,
the posterior and its closed-form normalizer, and the MLE of a multivariate Gaussian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import data, gaussian, ppca
from lecture6.audit import Check, claim

ORDER = 20

PCA = "Principal component analysis (PCA)"
GAUSS = "MLE for a multivariate Gaussian distribution"
TOL = 1e-8  # float64 identities between different routes; observed errors are ~1e-12


def _data(n=400, d=8, q=2, seed=0):
    return data.synthetic_ppca(jax.random.key(seed), n, d, q, sigma2=0.3)


def _dense_cov(model):
    W, sigma2 = np.asarray(model.W), float(model.sigma2)
    return W @ W.T + sigma2 * np.eye(W.shape[0])


def _eig_desc(S):
    lam, U = np.linalg.eigh(S)
    return lam[::-1], U[:, ::-1]


@claim(PCA, "PCA's k-th principal direction, along which the variance of the projected data is largest "
       "(orthogonal to the first k-1), is the eigenvector of Cov(X, X) = E[(X - E X)(X - E X)^T] with the "
       "k-th largest eigenvalue; that eigenvalue is the projected variance",
       "gradient ascent on the projected variance (ppca.max_variance_directions) on the 8x8 digits vs "
       "np.linalg.eigh of the covariance, k = 1..3: |cos| of the angle and the variances")
def _pca_directions() -> Check:
    X, _ = data.load_digits()
    V, var = ppca.max_variance_directions(X, 3, key=jax.random.key(0))
    lam, U = _eig_desc(np.cov(X, rowvar=False, bias=True))
    angle_err = float(np.max(1.0 - np.abs(np.sum(V * U[:, :3], axis=0))))
    var_err = float(np.max(np.abs(var - lam[:3]) / lam[:3]))
    proj_err = float(np.max(np.abs(np.var(X @ V, axis=0) - var) / var))
    err = max(angle_err, var_err, proj_err)
    return Check(err, err < 1e-8, f"projected variances {np.round(var, 4).tolist()}")


@claim(PCA, "P(x|h) = N(Wh + b, sigma2 I) and P(h) = N(0, I) give P(x) = N(b, W W^T + sigma2 I); "
       "its log-density in O(n d q) (determinant lemma + Woodbury) is exact",
       "ppca.log_likelihood vs the dense Cholesky log-density of W W^T + sigma2 I, random W, b, sigma2")
def _marginal() -> Check:
    rng = np.random.default_rng(0)
    err = 0.0
    for d, q in [(3, 1), (8, 3), (20, 5)]:
        model = ppca.PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                          jnp.asarray(rng.uniform(0.1, 2.0)))
        X = rng.standard_normal((10, d)) * 2
        ours = np.asarray(ppca.log_likelihood(model, X))
        dense = np.asarray(gaussian.logpdf(X, model.b, _dense_cov(model)))
        err = max(err, float(np.max(np.abs(ours - dense) / np.abs(dense))))
    return Check(err, err < TOL, "relative error")


@claim(PCA, "The MLE for b is the mean of the data",
       "d/db of the log-likelihood at b = mean is 0 for any W, sigma2 (jax.grad); the gradient route, "
       "started at a random data point, ends at the mean")
def _mle_b() -> Check:
    X, _ = _data()
    mean = X.mean(axis=0)
    rng = np.random.default_rng(1)
    W, sigma2 = jnp.asarray(rng.standard_normal((8, 2))), jnp.asarray(0.7)
    g = jax.grad(lambda b: jnp.mean(ppca.log_likelihood(ppca.PPCA(W, b, sigma2), X)))(jnp.asarray(mean))
    fit = ppca.fit_gradient(X, 2, key=jax.random.key(0), steps=600)
    err_grad = float(jnp.max(jnp.abs(g)))
    err_fit = float(np.max(np.abs(np.asarray(fit.b) - mean)) / np.std(X))
    return Check(max(err_grad, err_fit), err_grad < TOL and err_fit < 1e-4,
                 f"|grad| {err_grad:.1e}; gradient-route b vs mean {err_fit:.1e} (in data std)")


@claim(PCA, "The MLE for W is the set of principal eigenvectors from standard PCA, weighted by their "
       "eigenvalues: W = U_q (Lambda_q - sigma2 I)^(1/2), sigma2 = mean discarded eigenvalue",
       "the closed form is a stationary point (jax.grad ~ 0); EM and optax gradient ascent from random "
       "starts reach the same log-likelihood and subspace (principal angles)")
def _mle_W() -> Check:
    X, _ = _data()
    q = 2
    cf = ppca.fit_closed_form(X, q)
    g = jax.grad(lambda m: jnp.mean(ppca.log_likelihood(m, jnp.asarray(X))))(cf)
    grad = max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(g))
    ll_cf = float(jnp.mean(ppca.log_likelihood(cf, X)))
    em = ppca.fit_em(X, q, key=jax.random.key(1), iters=400)
    gd = ppca.fit_gradient(X, q, key=jax.random.key(2), steps=600)
    d_ll = max(abs(float(jnp.mean(ppca.log_likelihood(m, X))) - ll_cf) for m in (em, gd))
    angle = max(float(ppca.principal_angles(cf.W, m.W)[-1]) for m in (em, gd))
    _, U = _eig_desc(np.cov(X, rowvar=False, bias=True))
    eig_angle = float(ppca.principal_angles(cf.W, U[:, :q])[-1])
    err = max(grad, d_ll, angle, eig_angle)
    return Check(err, grad < TOL and d_ll < 1e-7 and angle < 1e-4 and eig_angle < TOL,
                 f"|grad| {grad:.1e}, loglik gap {d_ll:.1e} nats, max angle {angle:.1e} rad")


@claim(PCA, "The weights ensure that P(h) is 0-mean with I-covariance: pushing h ~ N(0, I) through "
       "x = W h + b + noise reproduces the data's mean and its variance along each principal direction",
       "U_q^T (W W^T + sigma2 I) U_q = Lambda_q and b = mean, at the closed-form fit")
def _weights() -> Check:
    X, _ = _data()
    q = 2
    cf = ppca.fit_closed_form(X, q)
    lam, U = _eig_desc(np.cov(X, rowvar=False, bias=True))
    C = _dense_cov(cf)
    err = float(np.max(np.abs(U[:, :q].T @ C @ U[:, :q] - np.diag(lam[:q]))) / lam[0])
    err = max(err, float(np.max(np.abs(np.asarray(cf.b) - X.mean(axis=0)))))
    return Check(err, err < TOL)


@claim(PCA, "Generate novel examples: sample h from P(h) = N(0, I), then x from P(x|h) = N(Wh + b, sigma2 I)",
       "40,000 ancestral samples: mean and covariance vs b and W W^T + sigma2 I, in standard errors")
def _sampling() -> Check:
    rng = np.random.default_rng(2)
    d, q, n = 5, 2, 40000
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
       "2-D numerical integration over h (401 x 401 grid on [-8, 8]^2) vs exp(ppca.log_likelihood)")
def _normalizer() -> Check:
    rng = np.random.default_rng(5)
    d, q = 4, 2
    W, b, sigma2 = rng.standard_normal((d, q)) * 0.8, rng.standard_normal(d), 0.6
    model = ppca.PPCA(jnp.asarray(W), jnp.asarray(b), jnp.asarray(sigma2))
    X = np.asarray(ppca.sample(model, jax.random.key(6), 3))
    grid = np.linspace(-8.0, 8.0, 401)
    H = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, q)
    step = grid[1] - grid[0]
    log_prior = -0.5 * np.sum(H**2, axis=1) - 0.5 * q * np.log(2 * np.pi)
    err = 0.0
    for x in X:
        r = x[None, :] - (H @ W.T + b[None, :])
        log_lik = -0.5 * np.sum(r**2, axis=1) / sigma2 - 0.5 * d * np.log(2 * np.pi * sigma2)
        Z = np.sum(np.exp(log_lik + log_prior)) * step**q
        closed = float(jnp.exp(ppca.log_likelihood(model, x[None, :])[0]))
        err = max(err, abs(Z - closed) / closed)
    return Check(err, err < 1e-8, "relative error of the numerical integral")


@claim(GAUSS, "The MLE of a multivariate Gaussian is mu = mean, Sigma = (1/n) sum (x - mu)(x - mu)^T: "
       "the derivatives of the log-likelihood vanish there",
       "jax.grad and the hand-derived gradient of the total log-likelihood at gaussian.mle, relative to "
       "their size at a nearby point; the 1/(n-1) covariance scores lower")
def _gaussian_mle() -> Check:
    rng = np.random.default_rng(6)
    X = rng.standard_normal((60, 3)) @ rng.standard_normal((3, 3)) + 2.0
    mu, Sigma = gaussian.mle(X)
    grad = jax.grad(gaussian.total_log_likelihood, argnums=(0, 1))
    g = grad(jnp.asarray(mu), jnp.asarray(Sigma), jnp.asarray(X))
    h = gaussian.total_log_likelihood_grad(mu, Sigma, X)
    scale = max(float(jnp.max(jnp.abs(t))) for t in grad(jnp.asarray(mu + 0.1), jnp.asarray(Sigma * 1.1),
                                                          jnp.asarray(X)))
    err = max(float(jnp.max(jnp.abs(t))) for t in (*g, *h)) / scale
    n = X.shape[0]
    lower = float(gaussian.total_log_likelihood(mu, Sigma * n / (n - 1), X)) < float(
        gaussian.total_log_likelihood(mu, Sigma, X))
    return Check(err, err < 1e-10 and lower, "gradient relative to its size one step away")


@claim(GAUSS, "for i.i.d. points the joint P(D | mu, Sigma) factors as the product over the n points: "
       "log P(D) = sum_i log N(x_i; mu, Sigma)",
       "gaussian.total_log_likelihood vs the density of the stacked vector (x_1, ..., x_n) under one "
       "nd-dimensional Gaussian with block-diagonal covariance I_n (x) Sigma (dense Cholesky)")
def _factorization() -> Check:
    rng = np.random.default_rng(5)
    d, n = 3, 6
    A = rng.standard_normal((d, d))
    Sigma = A @ A.T + 0.5 * np.eye(d)
    mu = rng.standard_normal(d)
    X = rng.multivariate_normal(mu, Sigma, size=n)
    joint = float(gaussian.logpdf(X.reshape(1, -1), np.tile(mu, n), np.kron(np.eye(n), Sigma))[0])
    total = float(gaussian.total_log_likelihood(jnp.asarray(mu), jnp.asarray(Sigma), jnp.asarray(X)))
    err = abs(joint - total) / abs(joint)
    return Check(err, err < TOL, "relative error")
