"""Probabilistic PCA: the likelihood against dense references and scikit-learn, the three fitting
routes against each other, recovery of a known model, the posterior against brute-force conditioning,
and sampling moments against their standard errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.scipy.stats import multivariate_normal

from lecture6 import data, gaussian, ppca
from lecture6.ppca import PPCA

TOL = 1e-10  # float64 quantities of O(1..100) computed by different routes


def _random_model(rng, d, q, sigma2=0.3):
    return PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                jnp.asarray(sigma2))


def _dense_cov(model):
    W, _, sigma2 = (np.asarray(p) for p in model)
    return W @ W.T + sigma2 * np.eye(W.shape[0])


@pytest.fixture(scope="module")
def synthetic():
    """n=2000 points of a known PPCA with d=12, q=3 (well separated), and the model."""
    return data.synthetic_ppca(jax.random.key(7), 2000, 12, 3, sigma2=0.2)


# ---------------------------------------------------------------------------------------------
# the likelihood


@pytest.mark.parametrize(("d", "q"), [(2, 1), (5, 2), (9, 4)])
def test_log_likelihood_equals_dense_gaussian(rng, d, q):
    model = _random_model(rng, d, q, sigma2=float(rng.uniform(0.05, 2.0)))
    X = rng.standard_normal((13, d)) * 2.0
    ours = np.asarray(ppca.log_likelihood(model, X))
    with jax.numpy_rank_promotion("allow"):  # jax.scipy's own code broadcasts (n, d) - (d,)
        ref = np.asarray(multivariate_normal.logpdf(X, model.b, _dense_cov(model)))
    assert ours.shape == (13,)
    np.testing.assert_allclose(ours, ref, rtol=TOL, atol=TOL)


def test_log_likelihood_at_scale(rng):
    # n = 6000 rows, d = 784: large enough for XLA's CPU backend to fuse the (n, d) products
    # differently from the small cases above (a cho_solve-based version went wrong here).
    n, d, q = 6000, 784, 50
    W = rng.standard_normal((d, q)) * np.linspace(3.0, 0.5, q)[None, :]
    b, sigma2 = rng.standard_normal(d), 0.1
    X = rng.standard_normal((n, q)) @ W.T + b[None, :] + np.sqrt(sigma2) * rng.standard_normal((n, d))
    M = W.T @ W + sigma2 * np.eye(q)
    r = X - b[None, :]
    m = r @ np.linalg.solve(M, W.T).T
    e = r - m @ W.T
    ref = -0.5 * (d * np.log(2 * np.pi) + (d - q) * np.log(sigma2) + np.linalg.slogdet(M)[1]
                  + np.sum(e**2, axis=1) / sigma2 + np.sum(m**2, axis=1))
    model = PPCA(jnp.asarray(W), jnp.asarray(b), jnp.asarray(sigma2))
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, X)), ref, rtol=TOL)
    mean, _ = ppca.posterior(model, X)
    np.testing.assert_allclose(np.asarray(mean), m, rtol=1e-9, atol=1e-9)


def test_log_likelihood_float32_is_stable(rng):
    # Data close to a 3-dim subspace with small noise: the naive |r|^2 - r^T W M^-1 W^T r cancels
    # badly in float32 here; the sum-of-squares form must stay at float32 round-off.
    d, q = 50, 3
    model = PPCA(jnp.asarray(rng.standard_normal((d, q)) * 10.0), jnp.asarray(rng.standard_normal(d) * 5),
                 jnp.asarray(1e-4))
    X = np.asarray(ppca.sample(model, jax.random.key(0), 200))
    ref = np.asarray(ppca.log_likelihood(model, X))  # float64
    model32 = PPCA(*(jnp.asarray(np.asarray(p), dtype=jnp.float32) for p in model))
    ours32 = ppca.log_likelihood(model32, X.astype(np.float32))
    assert ours32.dtype == jnp.float32
    # The quadratic term is ~d = 50 per point; float32 inputs alone carry ~1e-7 relative error
    # amplified by |x|/sigma ~ 1e3, so 1e-3 relative on a log-likelihood of ~|170| is the honest bound.
    np.testing.assert_allclose(np.asarray(ours32), ref, rtol=1e-3)


def test_log_likelihood_equals_sklearn_score_samples_at_sklearn_params(synthetic):
    from sklearn.decomposition import PCA

    X, _ = synthetic
    q = 3
    pca = PCA(n_components=q, svd_solver="full").fit(X)
    W = pca.components_.T * np.sqrt(pca.explained_variance_ - pca.noise_variance_)[None, :]
    at_sklearn = PPCA(jnp.asarray(W), jnp.asarray(pca.mean_), jnp.asarray(pca.noise_variance_))
    np.testing.assert_allclose(ppca.log_likelihood(at_sklearn, X), pca.score_samples(X),
                               rtol=TOL, atol=TOL)
    # scikit-learn scales by 1/(n-1); our 1/n fit is the MLE, so it scores at least as high.
    ours = float(jnp.mean(ppca.log_likelihood(ppca.fit_closed_form(X, q), X)))
    assert ours >= pca.score(X)
    assert ours - pca.score(X) < 1e-2  # ... and only just: the two differ by O(1/n)


def test_log_likelihood_from_moments_equals_data_average(rng):
    X = rng.standard_normal((30, 6))
    model = _random_model(rng, 6, 2)
    mean, S = ppca.moments(X)
    assert abs(float(ppca.log_likelihood_from_moments(model, jnp.asarray(mean), jnp.asarray(S)))
               - float(jnp.mean(ppca.log_likelihood(model, X)))) < TOL


@pytest.mark.parametrize("offset", [0.0, 3.0, 1e4])
def test_moments_match_two_pass_covariance_whatever_the_mean(rng, offset):
    """Small means take the one-product path, large ones the centred blocks; both stay accurate.

    With offset 1e4 and unit variances, X^T X / n - mean mean^T would lose ~8 digits (error ~1e-8).
    """
    X = offset + rng.standard_normal((5000, 7)) @ rng.standard_normal((7, 7))
    mean, S = ppca.moments(X)
    ref = np.cov(X, rowvar=False, bias=True)  # NumPy centres first (two passes)
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(S, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    assert (ppca._cancellation_ratio(X, mean) <= ppca._UNCENTRED_MAX_RATIO) == (offset < 10)


def test_fit_from_moments_equals_fit_from_data(synthetic):
    X, _ = synthetic
    mean, S = ppca.moments(X)
    a, b = ppca.fit_closed_form(X, 3), ppca.fit_closed_form_from_moments(mean, S, 3)
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"mean must be \(d,\) and S \(d, d\)"):
        ppca.fit_closed_form_from_moments(mean, S[:-1], 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        ppca.fit_closed_form_from_moments(mean, S * np.nan, 3)
    with pytest.raises(ValueError, match="q"):
        ppca.fit_closed_form_from_moments(mean, S, X.shape[1])


def test_log_likelihood_works_under_jit_and_grad(rng):
    model = _random_model(rng, 4, 2)
    X = jnp.asarray(rng.standard_normal((5, 4)))
    f = jax.jit(lambda m, X: jnp.sum(ppca.log_likelihood(m, X)))
    g = jax.grad(lambda m: jnp.sum(ppca.log_likelihood(m, X)))(model)
    assert abs(float(f(model, X)) - float(jnp.sum(ppca.log_likelihood(model, X)))) < TOL
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


# ---------------------------------------------------------------------------------------------
# the closed form, EM and the gradient route


def _mean_ll(model, X):
    return float(jnp.mean(ppca.log_likelihood(model, X)))


def test_closed_form_is_a_stationary_point_and_matches_the_eigendecomposition(synthetic):
    X, _ = synthetic
    q = 3
    model = ppca.fit_closed_form(X, q)
    def loss(m):
        return jnp.mean(ppca.log_likelihood(m, jnp.asarray(X)))

    grads = jax.grad(loss)(model)
    nudged = PPCA(model.W * 1.05, model.b + 0.05, model.sigma2 * 1.05)
    scale = max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(jax.grad(loss)(nudged)))
    assert scale > 1e-2
    for leaf in jax.tree_util.tree_leaves(grads):
        assert float(jnp.abs(leaf).max()) < 1e-9 * scale
    # Independent route: NumPy's eigendecomposition of the 1/n covariance.
    lam, U = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[q:].mean()
    np.testing.assert_allclose(float(model.sigma2), sigma2, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(model.b), X.mean(axis=0), rtol=1e-12, atol=1e-12)
    # W^T W = Lambda_q - sigma2 I: the principal eigenvectors weighted by their eigenvalues.
    np.testing.assert_allclose(np.asarray(model.W.T @ model.W), np.diag(lam[:q] - sigma2), atol=1e-9)
    assert ppca.principal_angles(model.W, U[:, :q])[-1] < 1e-8


def test_em_is_monotone_and_reaches_the_closed_form(synthetic, key):
    X, _ = synthetic
    q = 3
    cf = ppca.fit_closed_form(X, q)
    model, history = ppca.fit_em(X, q, key=key, iters=400, return_history=True)
    history = np.asarray(history)
    assert history.shape == (400,)
    # EM never decreases the likelihood; allow float64 round-off of the O(10) values only.
    assert np.diff(history).min() > -1e-11 * np.abs(history).max()
    assert history[-1] - history[0] > 1.0  # it did climb from the random start
    assert abs(history[-1] - _mean_ll(model, X)) < 1e-9
    assert abs(_mean_ll(model, X) - _mean_ll(cf, X)) < 1e-9
    assert ppca.principal_angles(cf.W, model.W)[-1] < 1e-5
    np.testing.assert_allclose(float(model.sigma2), float(cf.sigma2), rtol=1e-8)
    np.testing.assert_allclose(np.asarray(model.W @ model.W.T), np.asarray(cf.W @ cf.W.T), atol=1e-6)


def test_gradient_route_reaches_the_closed_form(synthetic, key):
    X, _ = synthetic
    q = 3
    cf = ppca.fit_closed_form(X, q)
    opt = ppca.default_optimizer(600)
    model, history = ppca.fit_gradient(X, q, key=key, steps=600, optimizer=opt, return_history=True)
    assert history.shape == (600,)
    assert abs(float(history[-1]) - _mean_ll(model, X)) < 1e-6  # history is in the units of X
    assert abs(_mean_ll(model, X) - _mean_ll(cf, X)) < 1e-7
    assert ppca.principal_angles(cf.W, model.W)[-1] < 1e-4
    np.testing.assert_allclose(float(model.sigma2), float(cf.sigma2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model.b), np.asarray(cf.b), atol=1e-4)


def test_gradient_loop_compiles_once_per_optimizer(synthetic, key):
    X, _ = synthetic
    opt = optax.adam(0.05)
    ppca.fit_gradient(X[:50], 2, key=key, steps=3, optimizer=opt)  # compile
    before = ppca._gradient_loop._cache_size()
    ppca.fit_gradient(X[:50], 2, key=jax.random.key(1), steps=3, optimizer=opt)
    assert ppca._gradient_loop._cache_size() == before


def test_gradient_route_reports_divergence(synthetic, key):
    X, _ = synthetic
    with pytest.raises(FloatingPointError, match="diverged"):
        ppca.fit_gradient(X, 2, key=key, steps=50, optimizer=optax.sgd(1e8))


def test_recovers_a_known_model(key):
    X, truth = data.synthetic_ppca(key, 20000, 10, 2, sigma2=0.5)
    fit = ppca.fit_closed_form(X, 2)
    C_true = np.asarray(truth.W @ truth.W.T)
    C_fit = np.asarray(fit.W @ fit.W.T)
    # Sampling error of a covariance from n points is ~ sqrt(2/n) = 1% relative; allow 5x that.
    assert np.linalg.norm(C_fit - C_true) / np.linalg.norm(C_true) < 0.05
    assert abs(float(fit.sigma2) - 0.5) / 0.5 < 0.05
    np.testing.assert_allclose(np.asarray(fit.b), np.asarray(truth.b), atol=5 * np.sqrt(10.0 / 20000))


# ---------------------------------------------------------------------------------------------
# posterior, normalizer, reconstruction, sampling


def test_posterior_equals_brute_force_conditioning(rng):
    d, q = 6, 2
    model = _random_model(rng, d, q, sigma2=0.7)
    X = rng.standard_normal((4, d))
    mean, cov = ppca.posterior(model, X)
    # Joint Gaussian of (h, x): mean (0, b), covariance [[I, W^T], [W, W W^T + sigma2 I]];
    # condition on x with the dense Schur complement.
    W, b = np.asarray(model.W), np.asarray(model.b)
    C = _dense_cov(model)
    gain = W.T @ np.linalg.inv(C)
    np.testing.assert_allclose(np.asarray(mean), (X - b) @ gain.T, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(np.asarray(cov), np.eye(q) - gain @ W, rtol=TOL, atol=TOL)


def test_bayes_rule_normalizer_is_the_marginal(rng):
    # log p(x|h) + log p(h) - log p(h|x) = log Z(x) = log p(x), for any h.
    d, q = 5, 2
    model = _random_model(rng, d, q, sigma2=0.4)
    x = rng.standard_normal((1, d))
    mean, cov = ppca.posterior(model, x)
    W, b, sigma2 = (np.asarray(p) for p in model)
    for h in rng.standard_normal((3, q)):
        log_joint = (gaussian.logpdf(x, W @ h + b, sigma2 * np.eye(d))
                     + gaussian.logpdf(h[None, :], np.zeros(q), np.eye(q)))
        log_post = gaussian.logpdf(h[None, :], mean[0], cov)
        np.testing.assert_allclose(log_joint - log_post, ppca.log_likelihood(model, x), rtol=TOL)


def test_reconstruction_from_posterior_mean(synthetic):
    X, _ = synthetic
    q = 3
    model = ppca.fit_closed_form(X, q)
    X_hat = np.asarray(ppca.reconstruct(model, X[:10]))
    # At the closed form, W E[h|x] + b = b + U_q diag((lambda - sigma2) / lambda) U_q^T (x - b).
    lam, U = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    lam, U = lam[::-1][:q], U[:, ::-1][:, :q]
    shrink = (lam - float(model.sigma2)) / lam
    b = X.mean(axis=0)
    expected = b + ((X[:10] - b) @ U) * shrink[None, :] @ U.T
    np.testing.assert_allclose(X_hat, expected, rtol=1e-9, atol=1e-9)


def test_sampling_moments_within_standard_errors(rng, key):
    d, q, n = 4, 2, 40000
    model = _random_model(rng, d, q, sigma2=0.5)
    X = np.asarray(ppca.sample(model, key, n))
    assert X.shape == (n, d)
    C = _dense_cov(model)
    K = 5.0  # a 5-sigma band: a false alarm in ~1 of 1.7 million checks
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(X.mean(axis=0) - np.asarray(model.b)) < K * se_mean)
    S = np.cov(X, rowvar=False)
    se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)  # Gaussian (Wishart) variance
    assert np.all(np.abs(S - C) < K * se_cov)


# ---------------------------------------------------------------------------------------------
# choosing q, angles


def test_choose_q_prefers_the_true_dimension(key):
    X, _ = data.synthetic_ppca(key, 3000, 20, 3, sigma2=0.3)
    X_train, X_test = data.train_test_split(jax.random.key(1), X)
    qs = [1, 2, 3, 4, 6, 8]
    best, scores = ppca.choose_q(X_train, X_test, qs)
    assert best in (3, 4)  # beyond 3 the extra directions only model noise: flat or worse
    assert scores[2] - scores[1] > 1.0  # missing a real direction costs a lot
    for q, s in zip(qs, scores):
        assert abs(s - _mean_ll(ppca.fit_closed_form(X_train, q), X_test)) < TOL


def test_principal_angles_match_scipy(rng):
    A, B = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    np.testing.assert_allclose(ppca.principal_angles(A, B),
                               np.sort(scipy.linalg.subspace_angles(A, B)), atol=1e-12)
    assert ppca.principal_angles(A, A @ rng.standard_normal((3, 3)))[-1] < 1e-12


# ---------------------------------------------------------------------------------------------
# bad input and degenerate data


@pytest.mark.parametrize(("X", "q", "match"), [
    (np.ones((10, 4)), 0, "1 <= q < d = 4, got q=0"),
    (np.ones((10, 4)), 4, "1 <= q < d = 4, got q=4"),
    (np.ones((1, 4)), 1, "n=2 rows.*got n=1"),
    (np.ones(8), 1, "2-D.*ndim=1"),
    (np.ones((2, 3, 4)), 1, "2-D.*ndim=3"),
])
def test_bad_inputs_raise_clear_errors(X, q, match):
    for fit in (ppca.fit_closed_form,
                lambda X, q: ppca.fit_em(X, q, key=jax.random.key(0), iters=2),
                lambda X, q: ppca.fit_gradient(X, q, key=jax.random.key(0), steps=2)):
        with pytest.raises(ValueError, match=match):
            fit(X, q)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_is_named(rng, bad):
    X = rng.standard_normal((10, 4))
    X[3, 2] = bad
    with pytest.raises(ValueError, match=r"NaN or inf .*row 3, column 2"):
        ppca.fit_closed_form(X, 1)
    with pytest.raises(ValueError, match=r"NaN or inf .*row 3, column 2"):
        ppca.log_likelihood(ppca.fit_closed_form(np.nan_to_num(X, posinf=0, neginf=0), 1), X)


def test_model_and_data_mismatch(rng):
    model = _random_model(rng, 4, 2)
    with pytest.raises(ValueError, match="d=5 features but the model has d=4"):
        ppca.log_likelihood(model, rng.standard_normal((3, 5)))
    with pytest.raises(ValueError, match="sigma2 must be positive, got -1"):
        ppca.log_likelihood(model._replace(sigma2=jnp.asarray(-1.0)), rng.standard_normal((3, 4)))
    with pytest.raises(TypeError, match="q must be an integer"):
        ppca.fit_closed_form(rng.standard_normal((5, 3)), 1.5)


def test_constant_features_keep_sigma2_positive(rng):
    # Digits-like: 4 varying pixels, 6 constant ones. With q=2 the discarded eigenvalues include
    # real variance; with q=5 >= rank they are all zero and sigma2 is floored, staying positive.
    X = np.zeros((100, 10))
    X[:, :4] = rng.standard_normal((100, 4))
    X[:, 4:] = 0.25
    for q in (2, 5, 8):
        for model in (ppca.fit_closed_form(X, q), ppca.fit_em(X, q, key=jax.random.key(q), iters=30)):
            assert float(model.sigma2) > 0.0
            assert np.all(np.isfinite(np.asarray(ppca.log_likelihood(model, X))))
    floored = ppca.fit_closed_form(X, 5)
    avg_var = np.var(X, axis=0).mean()
    np.testing.assert_allclose(float(floored.sigma2), ppca.SIGMA2_FLOOR * avg_var, rtol=1e-6)
    with pytest.raises(ValueError, match="every feature of X is constant"):
        ppca.fit_closed_form(np.ones((5, 3)), 1)


def test_max_variance_directions_are_the_ordered_eigenvectors(rng, key):
    """Standard PCA's definition (maximize projected variance) against an eigensolver."""
    X = rng.standard_normal((500, 6)) @ np.diag([3.0, 2.0, 1.5, 1.0, 0.5, 0.2]) @ np.linalg.qr(
        rng.standard_normal((6, 6)))[0]
    V, var = ppca.max_variance_directions(X, 3, key=key)
    lam, U = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    np.testing.assert_allclose(np.abs(np.sum(V * U[:, :3], axis=0)), 1.0, atol=1e-9)
    np.testing.assert_allclose(var, lam[:3], rtol=1e-9)
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)  # orthonormal
    # no random unit direction beats the first
    R = rng.standard_normal((6, 2000))
    R /= np.linalg.norm(R, axis=0)
    assert np.var(X @ R, axis=0).max() <= var[0] + 1e-12
    with pytest.raises(ValueError, match="k must be in"):
        ppca.max_variance_directions(X, 7, key=key)

