"""Losses: values against independent formulas (NumPy, SciPy), gradients against autodiff and FD."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lecture6 import losses
from lecture6.gradcheck import check_jacobian

#: Hand gradient vs autodiff of a formula written here, float64, relative to the largest entry: both
#: are exact up to rounding of a few operations on numbers of size up to ~300.
GRAD_RTOL = 1e-12


def mse_written_here(yhat, y):
    return 0.5 * jnp.sum((yhat - y) ** 2) / yhat.shape[0]


def ce_written_here(z, y):
    """-1/n sum_ik y_ik log softmax(z_i)_k, the max subtracted by hand (no lecture6, no jax.nn)."""
    m = jax.lax.stop_gradient(jnp.max(z, axis=1, keepdims=True))
    log_p = z - m - jnp.log(jnp.sum(jnp.exp(z - m), axis=1, keepdims=True))
    return -jnp.sum(y * log_p) / z.shape[0]


@jax.jit
def library_and_autodiff(z, y, onehot, labels):
    """The library's losses and hand gradients, and jax.grad of the formulas above: one program per shape."""
    library = (losses.mse(z, y), losses.softmax_cross_entropy(z, onehot), losses.softmax_cross_entropy(z, labels),
               losses.mse_grad(z, y), losses.softmax_cross_entropy_grad(z, labels))
    return library, (jax.grad(mse_written_here)(z, y), jax.grad(ce_written_here)(z, onehot))


@settings(max_examples=10, deadline=None)
@given(shape=st.sampled_from([(1, 2), (4, 3), (6, 5)]), scale=st.sampled_from([0.1, 3.0, 300.0]),
       seed=st.integers(0, 2**32 - 1))
def test_losses_and_their_gradients_over_shapes_and_scales(shape, scale, seed):
    # Shapes come from a small set, so the few compiled programs are shared between examples.
    r = np.random.default_rng(seed)
    n, K = shape
    z, y = r.normal(scale=scale, size=shape), r.normal(size=shape)
    labels = r.integers(0, K, size=n)
    onehot = np.eye(K)[labels]
    (mse, ce_onehot, ce_labels, mse_grad, ce_grad), (mse_auto, ce_auto) = library_and_autodiff(z, y, onehot, labels)
    # values against NumPy
    np.testing.assert_allclose(mse, np.sum((z - y) ** 2) / (2 * n), rtol=1e-13)
    zs = z - z.max(axis=1, keepdims=True)
    log_p = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
    for ce in (ce_onehot, ce_labels):
        np.testing.assert_allclose(ce, -np.sum(onehot * log_p) / n, rtol=1e-12, atol=1e-300)
    # hand-written gradients against jax.grad of the formulas written above
    for hand, auto in ((mse_grad, mse_auto), (ce_grad, ce_auto)):
        assert hand.shape == shape
        np.testing.assert_allclose(hand, auto, rtol=0, atol=GRAD_RTOL * float(np.max(np.abs(auto))))


def test_mse_is_the_slide_formula(rng):
    yhat, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    expected = sum(np.sum((yhat[i] - y[i]) ** 2) for i in range(6)) / (2 * 6)
    np.testing.assert_allclose(losses.mse(yhat, y), expected, rtol=1e-14)


def test_mse_target_shapes(rng):
    yhat = rng.normal(size=(5, 1))
    y = rng.normal(size=5)
    # (n,) targets for a single output, and (n,) predictions with (n,) targets, mean the same thing.
    np.testing.assert_allclose(losses.mse(yhat, y), losses.mse(yhat[:, 0], y), rtol=1e-15)
    np.testing.assert_allclose(losses.mse(yhat, y), np.sum((yhat[:, 0] - y) ** 2) / 10, rtol=1e-14)
    assert losses.mse_grad(yhat, y).shape == (5, 1)
    with pytest.raises(ValueError, match=r"\(4,\).*\(5, 1\)"):
        losses.mse(yhat, y[:4])
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        losses.mse(rng.normal(size=(5, 2)), y)


def test_mse_grad_against_autodiff_and_fd(rng):
    yhat, y = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 3)))
    res = check_jacobian(lambda v: losses.mse(v, y), yhat, lambda v: losses.mse_grad(v, y))
    assert res.ok, res.report()
    # (n,) predictions: n scalar outputs, the same formula
    res = check_jacobian(lambda v: losses.mse(v, y[:, 0]), yhat[:, 0], lambda v: losses.mse_grad(v, y[:, 0]))
    assert res.ok, res.report()


def test_softmax_ce_against_scipy(rng):
    from scipy.special import log_softmax

    z = rng.normal(scale=2.0, size=(8, 4))
    labels = rng.integers(0, 4, size=8)
    onehot = np.eye(4)[labels]
    expected = -np.mean(log_softmax(z, axis=1)[np.arange(8), labels])
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, onehot), expected, rtol=1e-12)
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, labels), expected, rtol=1e-12)


def test_softmax_ce_is_stable_for_huge_logits():
    z = jnp.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 1000.0]])
    y = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    val = losses.softmax_cross_entropy(z, y)
    np.testing.assert_allclose(val, np.log(2.0) / 2, rtol=1e-14)
    assert np.all(np.isfinite(losses.softmax_cross_entropy_grad(z, y)))


def test_softmax_ce_grad_against_autodiff_and_fd(rng):
    z = jnp.asarray(rng.normal(size=(5, 3)))
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 3, size=5)), 3)
    res = check_jacobian(lambda v: losses.softmax_cross_entropy(v, y), z,
                         lambda v: losses.softmax_cross_entropy_grad(v, y))
    assert res.ok, res.report()
    # The closed form is (softmax(z) - y) / n.
    p = np.exp(np.asarray(z)) / np.exp(np.asarray(z)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(losses.softmax_cross_entropy_grad(z, y), (p - np.asarray(y)) / 5, rtol=1e-13)


def test_softmax_ce_single_example_and_errors(rng):
    z = rng.normal(size=3)
    y = np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(losses.softmax_cross_entropy(z, y),
                               losses.softmax_cross_entropy(z[None, :], y[None, :]), rtol=1e-15)
    assert losses.softmax_cross_entropy_grad(z, y).shape == (3,)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 3\)"):
        losses.softmax_cross_entropy(rng.normal(size=(2, 3)), np.zeros((2, 4)))


def test_registry():
    assert losses.get_loss("mse") == (losses.mse, losses.mse_grad)
    assert losses.get_loss("softmax_ce")[1] is losses.softmax_cross_entropy_grad
    with pytest.raises(ValueError, match=r"'hinge'.*mse.*softmax_ce"):
        losses.get_loss("hinge")
