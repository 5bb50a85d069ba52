"""The multivariate Gaussian: Cholesky log-density against two references (scipy, the slide's formula
with an explicit inverse), its hand gradient against autodiff, and its MLE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lecture6 import gaussian

TOL = 1e-10  # float64 log-densities of O(10) computed by different routes agree to ~1e-13


def _spd(rng, m):
    A = rng.standard_normal((m, m))
    return A @ A.T + 0.5 * np.eye(m)


@pytest.mark.parametrize("m", [1, 3, 7])
def test_logpdf_matches_scipy_and_the_slide_formula(rng, m):
    X = rng.standard_normal((11, m))
    mu = rng.standard_normal(m)
    Sigma = _spd(rng, m)
    ours = np.asarray(gaussian.logpdf(X, mu, Sigma))
    ref = scipy.stats.multivariate_normal(mu, Sigma).logpdf(X).reshape(-1)
    # The slide's formula written out with an explicit inverse and determinant (NumPy).
    r = X - mu
    quad = np.einsum("ni,ij,nj->n", r, np.linalg.inv(Sigma), r)
    slide = -0.5 * quad - 0.5 * np.log((2 * np.pi) ** m * np.linalg.det(Sigma))
    np.testing.assert_allclose(ours, ref, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours, slide, rtol=TOL, atol=TOL)


def test_mle_is_mean_and_biased_covariance(rng):
    X = rng.standard_normal((50, 4)) * 3.0 + 100.0  # a large mean must not cost precision
    mu, Sigma = gaussian.mle(X)
    np.testing.assert_allclose(mu, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(Sigma, np.cov(X, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)


def test_hand_gradient_matches_autodiff(rng):
    autodiff = jax.jit(jax.grad(gaussian.total_log_likelihood, argnums=(0, 1)))
    for m in (1, 4):
        X = rng.standard_normal((9, m))
        mu, Sigma = rng.standard_normal(m), _spd(rng, m)
        g_mu, g_Sigma = gaussian.total_log_likelihood_grad(mu, Sigma, X)
        a_mu, a_Sigma = autodiff(jnp.asarray(mu), jnp.asarray(Sigma), jnp.asarray(X))
        np.testing.assert_allclose(g_mu, a_mu, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(g_Sigma, a_Sigma, rtol=1e-9, atol=1e-10)


def test_autodiff_gradient_vanishes_at_the_mle_only(rng):
    X = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 3)) + rng.standard_normal(3)
    mu, Sigma = gaussian.mle(X)
    grad = jax.jit(jax.grad(gaussian.total_log_likelihood, argnums=(0, 1)))
    g_mu, g_Sigma = grad(jnp.asarray(mu), jnp.asarray(Sigma), jnp.asarray(X))
    # Scale of the gradient one small step away, so "zero" means zero relative to something.
    p_mu, p_Sigma = grad(jnp.asarray(mu + 0.1), jnp.asarray(Sigma * 1.1), jnp.asarray(X))
    scale = max(float(jnp.abs(p_mu).max()), float(jnp.abs(p_Sigma).max()))
    assert scale > 1.0
    assert float(jnp.abs(g_mu).max()) < 1e-10 * scale
    assert float(jnp.abs(g_Sigma).max()) < 1e-10 * scale
    # The unbiased 1/(n-1) covariance is not the maximum.
    n = X.shape[0]
    unbiased = Sigma * n / (n - 1)
    assert gaussian.total_log_likelihood(mu, unbiased, X) < gaussian.total_log_likelihood(mu, Sigma, X)


def test_bad_inputs_are_named(rng):
    X = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match="not positive definite"):
        gaussian.logpdf(X, np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"mu must have shape \(2,\)"):
        gaussian.logpdf(X, np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="2-D"):
        gaussian.mle(np.zeros(4))
    with pytest.raises(ValueError, match="n=1"):
        gaussian.mle(np.zeros((1, 3)))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="row 2, column 1"):
        gaussian.mle(X)
