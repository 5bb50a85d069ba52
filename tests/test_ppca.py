"""Probabilistic PCA: the likelihood against dense references and scikit-learn, the three fitting
routes against each other, recovery of a known model, the posterior against brute-force conditioning,
and sampling moments against their standard errors; the host (NumPy) and JAX routes against each other,
the JAX route as one jittable program, float32, determinism, and moments of data read chunk by chunk."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from hypothesis import given, settings

from lecture6 import compile_time, ppca
from lecture6.ppca import PPCA

TOL = 1e-10  # float64 quantities of O(1..100) computed by different routes


def _random_model(rng, d, q, sigma2=0.3):
    # sigma2 a float64 array like a fitted model's (a Python float would be weakly typed: another program)
    return PPCA(jnp.asarray(rng.standard_normal((d, q))), jnp.asarray(rng.standard_normal(d)),
                jnp.asarray(np.float64(sigma2)))


def _dense_cov(model):
    W, _, sigma2 = (np.asarray(p) for p in model)
    return W @ W.T + sigma2 * np.eye(W.shape[0])


def _assert_models_close(a, b, rtol=TOL, atol=1e-12):
    for u, v in zip(a, b):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def synthetic():
    """n=2000 points of a known PPCA with d=12, q=3 (well separated), drawn with NumPy, and the model."""
    rng = np.random.default_rng(7)
    W = np.linalg.qr(rng.standard_normal((12, 3)))[0] * np.array([3.0, 2.6, 2.2])
    b = rng.standard_normal(12)
    X = rng.standard_normal((2000, 3)) @ W.T + b + np.sqrt(0.2) * rng.standard_normal((2000, 12))
    return X, PPCA(jnp.asarray(W), jnp.asarray(b), jnp.asarray(0.2))


@pytest.fixture(scope="module")
def em_fit(synthetic):
    """EM on the synthetic data, 400 iterations, with its history (shared: compiled once)."""
    return ppca.fit_em(synthetic[0], 3, key=jax.random.key(11), iters=400, return_history=True)


@pytest.fixture(scope="module")
def gradient_fit(synthetic):
    """The gradient route with the default optimizer, 600 steps, with its history."""
    return ppca.fit_gradient(synthetic[0], 3, key=jax.random.key(12), steps=600, return_history=True)


# ---------------------------------------------------------------------------------------------
# the likelihood


def _dense_logpdf(model, X):
    """Independent reference: scipy's dense Gaussian log-density of W W^T + sigma2 I."""
    return scipy.stats.multivariate_normal(np.asarray(model.b), _dense_cov(model)).logpdf(X).reshape(-1)


def _model_and_data(rng, n, d, q, scale, offset):
    model = PPCA(jnp.asarray(rng.standard_normal((d, q)) * scale),
                 jnp.asarray(offset + rng.standard_normal(d) * scale),
                 jnp.asarray(np.float64(scale**2 * rng.uniform(0.05, 2.0))))
    return model, np.asarray(model.b)[None, :] + 2.0 * scale * rng.standard_normal((n, d))


def _atol(d, scale, offset):
    # A few ulps of the summands d log(2 pi), log det C (~d log scale^2) and the quadratic form
    # (~4 d), plus x - b rounded at |offset| and squared relative to scale.
    return 1e-12 * d * (10 + abs(np.log(scale**2)) + (abs(offset) / scale) ** 2)


@settings(max_examples=15, deadline=None, database=None)
@given(st.data(), st.integers(1, 12), st.integers(2, 7), st.floats(1e-2, 1e2), st.floats(-1e3, 1e3),
       st.integers(0, 2**16))
def test_log_likelihood_equals_dense_gaussian_for_any_shape_scale_and_offset(draw, n, d, scale, offset, seed):
    """The host route (NumPy in) against scipy's dense Gaussian, over (n, d, q, scale, offset)."""
    q = draw.draw(st.integers(1, d - 1), label="q")
    model, X = _model_and_data(np.random.default_rng(seed), n, d, q, scale, offset)
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, X)), _dense_logpdf(model, X),
                               rtol=1e-11, atol=_atol(d, scale, offset))


@pytest.mark.parametrize(("scale", "offset"), [(1e-2, 0.0), (1.0, 1e3), (1e2, -1e3)])
def test_jax_route_log_likelihood_equals_dense_gaussian(rng, scale, offset):
    """The JAX route (jax.Array in) at the extremes of the range above, one shape (one compile, shared
    with the fallback test below)."""
    model, X = _model_and_data(rng, 50, 8, 2, scale, offset)
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, jnp.asarray(X))), _dense_logpdf(model, X),
                               rtol=1e-11, atol=_atol(8, scale, offset))


def test_log_likelihood_at_scale(rng):
    # n = 6000 rows, d = 784: large enough for XLA's CPU backend to fuse the (n, d) products
    # differently from the small cases above (a cho_solve-based JAX route went wrong here), and for
    # the host route to cross its block boundaries. Reference: the posterior-mean form in NumPy.
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
    for X_in in (X, jnp.asarray(X)):  # host route, JAX route
        np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, X_in)), ref, rtol=TOL)
    mean, _ = ppca.posterior(model, jnp.asarray(X))
    np.testing.assert_allclose(np.asarray(mean), m, rtol=1e-9, atol=1e-9)


def test_host_log_likelihood_falls_back_where_woodbury_would_cancel(rng, monkeypatch):
    # Data far from the origin (|b| ~ 3e4) with sigma2 r^T C^-1 r ~ 0.1: the one-product form
    # |x|^2 - 2 x.b + |b|^2 - p^T M^-1 p would subtract numbers ~1e10 times larger than its result.
    d, q = 8, 2
    W, b, sigma2 = rng.standard_normal((d, q)) * 3.0, 1e4 + rng.standard_normal(d), np.float64(1e-2)
    model = PPCA(jnp.asarray(W), jnp.asarray(b), jnp.asarray(sigma2))
    X = rng.standard_normal((50, q)) @ W.T + b[None, :] + 0.1 * rng.standard_normal((50, d))
    ref = _dense_logpdf(model, X)  # C is well conditioned (~1e4): the dense route is accurate here
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, X)), ref, rtol=TOL)
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, jnp.asarray(X))), ref, rtol=TOL)
    monkeypatch.setattr(ppca, "_WOODBURY_MAX_RATIO", np.inf)  # the one-product form for every row
    fast_only = np.asarray(ppca.log_likelihood(model, X))
    assert np.max(np.abs(fast_only - ref) / np.abs(ref)) > 1e-9  # ... which the fallback is there for


def test_log_likelihood_float32_is_stable(rng):
    # Data close to a 3-dim subspace with small noise: the naive |r|^2 - r^T W M^-1 W^T r cancels
    # badly in float32 here; the sum-of-squares form must stay at float32 round-off.
    d, q = 50, 3
    model = PPCA(jnp.asarray(rng.standard_normal((d, q)) * 10.0), jnp.asarray(rng.standard_normal(d) * 5),
                 jnp.asarray(1e-4))
    W, b = np.asarray(model.W), np.asarray(model.b)
    X = rng.standard_normal((200, q)) @ W.T + b[None, :] + 1e-2 * rng.standard_normal((200, d))
    ref = np.asarray(ppca.log_likelihood(model, X))  # float64
    model32 = PPCA(*(jnp.asarray(np.asarray(p), dtype=jnp.float32) for p in model))
    for X32 in (X.astype(np.float32), jnp.asarray(X, dtype=jnp.float32)):  # host route, JAX route
        ours32 = ppca.log_likelihood(model32, X32)
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
    assert abs(float(ppca.log_likelihood_from_moments(model, mean, S))
               - float(jnp.mean(ppca.log_likelihood(model, X)))) < TOL


def test_log_likelihood_works_under_jit_and_grad(rng):
    model = _random_model(rng, 4, 2)
    X = rng.standard_normal((5, 4))
    f = jax.jit(lambda m, X: jnp.sum(ppca.log_likelihood(m, X)))
    assert abs(float(f(model, jnp.asarray(X))) - float(np.sum(_dense_logpdf(model, X)))) < TOL
    # A traced model takes the JAX route even for a NumPy X. Reference: d/db = C^-1 sum_i (x_i - b).
    g = jax.jit(jax.grad(lambda m: jnp.sum(ppca.log_likelihood(m, X))))(model)
    expected = np.linalg.solve(_dense_cov(model), (X - np.asarray(model.b)).sum(axis=0))
    np.testing.assert_allclose(np.asarray(g.b), expected, rtol=1e-10, atol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


# ---------------------------------------------------------------------------------------------
# moments: host and JAX routes, in memory and chunk by chunk


@pytest.mark.parametrize("offset", [0.0, 3.0, 1e4])
def test_moments_match_two_pass_covariance_whatever_the_mean(rng, offset):
    """Small means take the one-product path, large ones the centred blocks; both stay accurate.

    With offset 1e4 and unit variances, X^T X / n - mean mean^T would lose ~8 digits (error ~1e-8).
    """
    X = offset + rng.standard_normal((5000, 7)) @ rng.standard_normal((7, 7))
    ref = np.cov(X, rowvar=False, bias=True)  # NumPy centres first (two passes)
    for X_in in (X, jnp.asarray(X)):  # host route, JAX route (lax.cond on the device)
        mean, S = ppca.moments(X_in)
        assert isinstance(S, jax.Array) == isinstance(X_in, jax.Array)
        np.testing.assert_allclose(np.asarray(mean), X.mean(axis=0), rtol=1e-14, atol=1e-14 * np.abs(X).max())
        np.testing.assert_allclose(np.asarray(S), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    mean = X.mean(axis=0)
    ratio = ppca._cancellation_ratio(X, mean)
    np.testing.assert_allclose(ratio, np.max(mean**2 / np.var(X[:ppca._BLOCK_ROWS], axis=0)), rtol=1e-12)
    assert (ratio <= ppca._UNCENTRED_MAX_RATIO) == (offset < 10)


def test_chunked_moments_equal_in_memory_moments(rng):
    X = 5.0 + rng.standard_normal((1003, 6)) @ rng.standard_normal((6, 6))
    sizes = [1, 0, 250, 2, 7, 600, 143]  # uneven, with an empty and a one-row chunk
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(X)
    mean_ref, S_ref = ppca.moments(X)
    host_chunks = (X[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    device_chunks = (jnp.asarray(X[a:b]) for a, b in ((0, 3), (3, 503), (503, 1003)))  # two shapes
    for chunks in (host_chunks, device_chunks):
        mean, S, n = ppca.moments_chunks(chunks)
        assert n == len(X)
        np.testing.assert_allclose(np.asarray(mean), mean_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(S), S_ref, rtol=1e-12, atol=1e-12 * np.abs(S_ref).max())
    # float32 chunks are reduced in float64 on the host route: as accurate as their values allow.
    X32 = X.astype(np.float32)
    mean, S, _ = ppca.moments_chunks(X32[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    np.testing.assert_allclose(S, np.cov(X32.astype(np.float64), rowvar=False, bias=True), rtol=1e-12,
                               atol=1e-12 * np.abs(S_ref).max())
    model = ppca.fit_closed_form_chunks(iter(np.array_split(X, 5)), 2)
    _assert_models_close(model, ppca.fit_closed_form(X, 2), rtol=1e-10, atol=1e-10)


def test_chunk_errors_name_the_chunk_and_the_row(rng):
    X = rng.standard_normal((30, 4))
    with pytest.raises(ValueError, match=r"chunk 2 has 3 columns, but chunk 0 had d=4.*row 20"):
        ppca.moments_chunks([X[:10], X[10:20], X[20:, :3]])
    bad = X.copy()
    bad[23, 1] = np.nan
    for convert in (np.asarray, jnp.asarray):
        with pytest.raises(ValueError, match=r"chunk 2 contains NaN or inf .*row 3, column 1: nan; "
                                             r"row 23 counting the rows of all chunks"):
            ppca.moments_chunks([convert(bad[:10]), convert(bad[10:20]), convert(bad[20:])])
    with pytest.raises(ValueError, match="chunk 1 must be 2-D"):
        ppca.moments_chunks([X[:10], X[10]])
    with pytest.raises(ValueError, match="n=1 rows in all"):
        ppca.moments_chunks([X[:1]])
    with pytest.raises(ValueError, match=r"chunk 1 \(starting at row 10 of the data\): .*row 3, column 1"):
        ppca.average_log_likelihood_chunks(ppca.fit_closed_form(X, 2), [X[:10], bad[20:]])


# ---------------------------------------------------------------------------------------------
# the closed form, EM and the gradient route


def _mean_ll(model, X):
    return float(jnp.mean(ppca.log_likelihood(model, X)))


def test_host_and_jax_routes_agree(synthetic, em_fit):
    """One public function per step; NumPy in takes the host route, jax.Array in the JAX route."""
    X, _ = synthetic
    Xj = jnp.asarray(X)
    _assert_models_close(ppca.fit_closed_form(Xj, 3), ppca.fit_closed_form(X, 3))
    for a, b in zip(ppca.moments(Xj), ppca.moments(X)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=TOL, atol=1e-13)
    model = em_fit[0]
    np.testing.assert_allclose(np.asarray(ppca.log_likelihood(model, Xj)),
                               np.asarray(ppca.log_likelihood(model, X)), rtol=TOL)
    em_j = ppca.fit_em(Xj, 3, key=jax.random.key(11), iters=400)
    _assert_models_close(em_j, model, rtol=1e-9, atol=1e-10)  # 400 iterations amplify 1e-15 moments a little
    mean_j, S_j = ppca.moments(Xj)
    _assert_models_close(ppca.fit_closed_form_from_moments(mean_j, S_j, 3), ppca.fit_closed_form(X, 3))
    for a, b in zip(ppca.spectrum(Xj), ppca.spectrum(X)):
        np.testing.assert_allclose(np.abs(np.asarray(a)), np.abs(b), rtol=1e-9, atol=1e-11)


def test_jax_route_is_one_jittable_program(synthetic):
    """``jax.jit(fit_closed_form, static_argnames="q")`` compiles and equals the eager host route; every
    other public step of the JAX route traces into one program (``jax.make_jaxpr``, no compile), where
    a NumPy call on the data or a host callback would fail or show: the data stay on their device."""
    X, _ = synthetic
    Xj = jnp.asarray(X)
    _assert_models_close(jax.jit(ppca.fit_closed_form, static_argnames="q")(Xj, q=3), ppca.fit_closed_form(X, 3))

    def everything(X):
        model = ppca.fit_closed_form(X, 3)
        mean, S, _ = ppca.moments_chunks([X[:1000], X[1000:]])
        return (ppca.moments(X), ppca.log_likelihood(model, X), ppca.posterior(model, X),
                ppca.fit_closed_form_from_moments(mean, S, 3), ppca.sample(model, jax.random.key(0), 5),
                ppca.fit_em(X, 3, key=jax.random.key(11), iters=400),
                ppca.fit_gradient(X, 3, key=jax.random.key(12), steps=600))

    jaxpr = str(jax.make_jaxpr(everything)(Xj))
    assert "callback" not in jaxpr and "scan" in jaxpr


def test_bad_jax_input_is_named_when_concrete(rng, synthetic):
    # The synthetic data's shape and q = 3: the JAX-route programs are the ones other tests here compile.
    X = synthetic[0].copy()
    X[3, 2] = np.nan
    Xj = jnp.asarray(X)
    for f in (lambda: ppca.fit_closed_form(Xj, 3), lambda: ppca.moments(Xj),
              lambda: ppca.fit_em(Xj, 3, key=jax.random.key(0), iters=2),
              lambda: ppca.fit_gradient(Xj, 3, key=jax.random.key(0), steps=2),
              lambda: ppca.log_likelihood(_random_model(rng, 12, 3), Xj)):
        with pytest.raises(ValueError, match=r"NaN or inf \(1 entries; first at row 3, column 2: nan\)"):
            f()
    ones = jnp.ones(X.shape)
    with pytest.raises(ValueError, match="1 <= q < d = 12, got q=12"):
        ppca.fit_closed_form(ones, 12)
    with pytest.raises(ValueError, match="2-D.*ndim=1"):
        ppca.fit_closed_form(ones[0], 3)
    with pytest.raises(ValueError, match="every feature of X is constant"):
        ppca.fit_closed_form(ones, 3)
    # Under jit the shapes are still checked ...
    with pytest.raises(ValueError, match="1 <= q < d = 12, got q=12"):
        jax.jit(ppca.fit_closed_form, static_argnames="q")(ones, q=12)
    # ... but not the values: NaN data give NaN parameters (documented).
    model = jax.jit(ppca.fit_closed_form, static_argnames="q")(Xj, q=3)
    assert not np.all(np.isfinite(np.asarray(model.b)))


def test_float32_in_float32_out_with_64_bit_mode_off(rng):
    """The default (x64 off) mode: float32 data, float32 model and log-likelihood, on both routes,
    agreeing with a float64 NumPy reference to float32 accuracy."""
    d, q = 10, 2
    scales = np.array([3.0, 2.0] + [0.3] * (d - 2))
    X = 1.0 + rng.standard_normal((500, d)) * scales @ np.linalg.qr(rng.standard_normal((d, d)))[0]
    lam, U = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    sigma2_ref = lam[q:].mean()
    ref_model = PPCA(U[:, :q] * np.sqrt(lam[:q] - sigma2_ref), X.mean(axis=0), sigma2_ref)
    ll_ref = -0.5 * (d * np.log(2 * np.pi) + np.linalg.slogdet(_dense_cov(ref_model))[1]
                     + np.einsum("ij,jk,ik->i", X - ref_model.b, np.linalg.inv(_dense_cov(ref_model)),
                                 X - ref_model.b))
    X32 = X.astype(np.float32)
    with jax.enable_x64(False):
        for X_in in (X32, jnp.asarray(X32)):
            model = ppca.fit_closed_form(X_in, q)
            ll = ppca.log_likelihood(model, X_in)
            assert all(p.dtype == jnp.float32 for p in model) and ll.dtype == jnp.float32
            # float32 data carry ~6e-8 relative error; eigenvalues, sigma2 and log-likelihoods of O(10)
            # computed from them agree with float64 to ~1e-5 relative.
            np.testing.assert_allclose(float(model.sigma2), sigma2_ref, rtol=1e-4)
            np.testing.assert_allclose(np.asarray(ll), ll_ref, rtol=1e-4)
            assert ppca.principal_angles(np.asarray(model.W), U[:, :q])[-1] < 1e-3


def test_closed_form_is_a_stationary_point_and_matches_the_eigendecomposition(synthetic):
    X, _ = synthetic
    q = 3
    model = ppca.fit_closed_form(X, q)

    def loss(m, X):
        return jnp.mean(ppca.log_likelihood(m, X))  # a traced model: the JAX route

    grad = jax.jit(jax.grad(loss))
    grads = grad(model, X)
    W, b, sigma2 = (np.asarray(p) for p in model)
    nudged = PPCA(W * 1.05, b + 0.05, sigma2 * 1.05)
    scale = max(float(np.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(grad(nudged, X)))
    assert scale > 1e-2
    for leaf in jax.tree_util.tree_leaves(grads):
        assert float(np.abs(leaf).max()) < 1e-9 * scale
    # Independent route: NumPy's eigendecomposition of the 1/n covariance.
    lam, U = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[q:].mean()
    np.testing.assert_allclose(float(model.sigma2), sigma2, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(model.b), X.mean(axis=0), rtol=1e-12, atol=1e-12)
    # W^T W = Lambda_q - sigma2 I: the principal eigenvectors weighted by their eigenvalues.
    np.testing.assert_allclose(W.T @ W, np.diag(lam[:q] - sigma2), atol=1e-9)
    assert ppca.principal_angles(W, U[:, :q])[-1] < 1e-8


def test_host_route_fit_compiles_no_program_for_a_new_shape(rng):
    """NumPy in: the fit is NumPy/LAPACK and the model reaches JAX by device_put, so a shape never seen
    before costs no tracing or compiling (a jnp.asarray or jnp op on the results would compile)."""
    X = 2.0 + rng.standard_normal((41, 13))  # a shape no other test uses
    with compile_time.measure() as spent:
        model = jax.block_until_ready(ppca.fit_closed_form(X, 3))
    assert spent.programs == 0, f"{spent.programs} programs compiled"
    assert isinstance(model.W, jax.Array) and model.W.shape == (13, 3)


def test_fit_from_moments_equals_fit_from_data(synthetic):
    X, _ = synthetic
    mean, S = ppca.moments(X)
    _assert_models_close(ppca.fit_closed_form(X, 3), ppca.fit_closed_form_from_moments(mean, S, 3))
    with pytest.raises(ValueError, match=r"mean must be \(d,\) and S \(d, d\)"):
        ppca.fit_closed_form_from_moments(mean, S[:-1], 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        ppca.fit_closed_form_from_moments(mean, S * np.nan, 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        ppca.fit_closed_form_from_moments(jnp.asarray(mean), jnp.asarray(S * np.nan), 3)
    with pytest.raises(ValueError, match="q"):
        ppca.fit_closed_form_from_moments(mean, S, X.shape[1])


def test_em_is_monotone_and_reaches_the_closed_form(synthetic, em_fit):
    X, _ = synthetic
    q = 3
    cf = ppca.fit_closed_form(X, q)
    model, history = em_fit
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


def test_gradient_route_reaches_the_closed_form(synthetic, gradient_fit):
    X, _ = synthetic
    q = 3
    cf = ppca.fit_closed_form(X, q)
    model, history = gradient_fit
    assert history.shape == (600,)
    assert abs(float(history[-1]) - _mean_ll(model, X)) < 1e-6  # history is in the units of X
    assert abs(_mean_ll(model, X) - _mean_ll(cf, X)) < 1e-7
    assert ppca.principal_angles(cf.W, model.W)[-1] < 1e-4
    np.testing.assert_allclose(float(model.sigma2), float(cf.sigma2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(model.b), np.asarray(cf.b), atol=1e-4)


def test_reruns_with_the_same_key_are_bit_identical(synthetic, em_fit, gradient_fit):
    X, _ = synthetic
    em_again = ppca.fit_em(X, 3, key=jax.random.key(11), iters=400, return_history=True)
    gd_again = ppca.fit_gradient(X, 3, key=jax.random.key(12), steps=600, return_history=True)
    for first, again in ((em_fit, em_again), (gradient_fit, gd_again)):
        for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
            assert np.array_equal(np.asarray(a), np.asarray(b))
    model = em_fit[0]
    n = SAMPLES  # the sampling test's n and d = 12, q = 3: one compiled sampler
    assert np.array_equal(np.asarray(ppca.sample(model, jax.random.key(3), n)),
                          np.asarray(ppca.sample(model, jax.random.key(3), n)))
    # ... and a different key gives a different start (so the comparison above could fail).
    other = ppca.fit_em(X, 3, key=jax.random.key(12), iters=400)
    assert not np.array_equal(np.asarray(other.W), np.asarray(model.W))


def test_gradient_loop_compiles_once_and_reports_divergence(synthetic, gradient_fit):
    """The default optimizer is the same object for the same (steps, learning rate), so a second fit
    reuses the compiled loop; so does a second fit with the same optimizer object."""
    X, _ = synthetic
    assert ppca.default_optimizer(600) is ppca.default_optimizer(600)
    before = ppca._gradient_fit._cache_size()
    ppca.fit_gradient(X, 3, key=jax.random.key(5), steps=600)  # the default optimizer again, a new key
    assert ppca._gradient_fit._cache_size() == before
    opt = optax.sgd(1e8)  # a step size that must diverge
    for seed in (1, 2):
        with pytest.raises(FloatingPointError, match=r"diverged .* at step \d+ of 3\); lower the learning"):
            ppca.fit_gradient(X[:50], 2, key=jax.random.key(seed), steps=3, optimizer=opt)
    assert ppca._gradient_fit._cache_size() == before + 1  # only the new (optimizer, shapes) compiled


def test_recovers_a_known_model(rng):
    # Data drawn with NumPy from a known model: W with orthogonal columns of norms 3 and 2.2.
    n, d, q, sigma2 = 20000, 10, 2, 0.5
    W = np.linalg.qr(rng.standard_normal((d, q)))[0] * np.array([3.0, 2.2])
    b = rng.standard_normal(d)
    X = rng.standard_normal((n, q)) @ W.T + b + np.sqrt(sigma2) * rng.standard_normal((n, d))
    fit = ppca.fit_closed_form(X, q)
    C_fit = np.asarray(fit.W @ fit.W.T)
    # Sampling error of a covariance from n points is ~ sqrt(2/n) = 1% relative; allow 5x that.
    assert np.linalg.norm(C_fit - W @ W.T) / np.linalg.norm(W @ W.T) < 0.05
    assert abs(float(fit.sigma2) - sigma2) / sigma2 < 0.05
    np.testing.assert_allclose(np.asarray(fit.b), b, atol=5 * np.sqrt(10.0 / n))


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
    d, q = 6, 2  # the shapes of the posterior test above: one compiled posterior
    model = _random_model(rng, d, q, sigma2=0.4)
    x = rng.standard_normal((4, d))
    mean, cov = (np.asarray(a) for a in ppca.posterior(model, x))
    W, b, sigma2 = (np.asarray(p) for p in model)
    log_marginal = np.asarray(ppca.log_likelihood(model, x))
    for i, h in zip((0, 0, 3), rng.standard_normal((3, q))):
        log_joint = (scipy.stats.multivariate_normal(W @ h + b, sigma2 * np.eye(d)).logpdf(x[i])
                     + scipy.stats.multivariate_normal(np.zeros(q), np.eye(q)).logpdf(h))
        log_post = scipy.stats.multivariate_normal(mean[i], cov).logpdf(h)
        np.testing.assert_allclose(log_joint - log_post, log_marginal[i], rtol=TOL)


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


SAMPLES = 40000


def test_sampling_moments_within_standard_errors(rng, key):
    d, q, n = 12, 3, SAMPLES  # the shapes of the synthetic model (the rerun test samples it)
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


def test_choose_q_prefers_the_true_dimension(rng):
    d, q = 20, 3
    W = np.linalg.qr(rng.standard_normal((d, q)))[0] * np.array([3.0, 2.6, 2.2])
    X = rng.standard_normal((3000, q)) @ W.T + rng.standard_normal(d) + np.sqrt(0.3) * rng.standard_normal((3000, d))
    X_train, X_test = X[:2400], X[2400:]  # i.i.d. rows: any split is a random split
    qs = [1, 2, 3, 4, 6, 8]
    best, scores = ppca.choose_q(X_train, X_test, qs)
    assert best in (3, 4)  # beyond 3 the extra directions only model noise: flat or worse
    assert scores[2] - scores[1] > 1.0  # missing a real direction costs a lot
    for q, s in zip(qs, scores):
        assert abs(s - _mean_ll(ppca.fit_closed_form(X_train, q), X_test)) < TOL


def test_principal_angles_recover_known_angles(rng):
    """Subspaces built with known angles, rotated and given other bases (which must not matter).

    Below 45 degrees (comparing two fits) the angles come from sines, accurate down to 1e-9 rad where
    a cosine would give 0. With an angle above 45 degrees among them, scipy 1.17 computes the smaller
    ones from cosines as well: then only ~1e-8 absolute (sqrt of float64's epsilon) -- stated here.
    """
    d, k = 9, 3

    def pair(theta):
        A = np.eye(d)[:, :k]
        B = np.cos(theta)[None, :] * np.eye(d)[:, :k] + np.sin(theta)[None, :] * np.eye(d)[:, k:2 * k]
        Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
        return Q @ A @ rng.standard_normal((k, k)), Q @ B @ rng.standard_normal((k, k))

    small = np.array([1e-9, 1e-5, 0.7])
    np.testing.assert_allclose(ppca.principal_angles(*pair(small)), small, rtol=1e-6)
    mixed = np.array([1e-3, 0.3, 1.2])
    np.testing.assert_allclose(ppca.principal_angles(*pair(mixed)), mixed, rtol=0, atol=1e-7)
    A, B = pair(small)
    assert ppca.principal_angles(A, A @ rng.standard_normal((k, k)))[-1] < 1e-12
    with pytest.raises(ValueError, match="same shape"):
        ppca.principal_angles(A, B[:, :2])


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
    for convert in (np.asarray, jnp.asarray):
        with pytest.raises(ValueError, match="d=5 features but the model has d=4"):
            ppca.log_likelihood(model, convert(rng.standard_normal((3, 5))))
        with pytest.raises(ValueError, match="sigma2 must be positive, got -1"):
            ppca.log_likelihood(model._replace(sigma2=jnp.asarray(-1.0)), convert(rng.standard_normal((3, 4))))
    with pytest.raises(TypeError, match="q must be an integer"):
        ppca.fit_closed_form(rng.standard_normal((5, 3)), 1.5)


def test_constant_features_keep_sigma2_positive(rng, em_fit):
    # Digits-like: 2 varying pixels, 10 constant ones. With q=1 the discarded eigenvalues include
    # real variance; with q=3 >= rank they are all zero and sigma2 is floored, staying positive.
    X = np.zeros((100, 12))
    X[:, :2] = rng.standard_normal((100, 2))
    X[:, 2:] = 0.25
    models = [ppca.fit_closed_form(X, q) for q in (1, 3, 8)]
    models.append(ppca.fit_em(X, 3, key=jax.random.key(5), iters=400))  # em_fit's shapes: no compile
    for model in models:
        assert float(model.sigma2) > 0.0
        assert np.all(np.isfinite(np.asarray(ppca.log_likelihood(model, X))))
    avg_var = np.var(X, axis=0).mean()
    assert float(models[0].sigma2) > 100 * ppca.SIGMA2_FLOOR * avg_var  # real variance discarded
    for floored in (models[1], models[2], models[3]):
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
