"""Losses: values against independent formulas (NumPy, scikit-learn), gradients against autodiff and FD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import losses
from lecture6.jacobian import check_jacobian


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


@pytest.mark.parametrize("shape", [(4, 3), (6,)])
def test_mse_grad_against_autodiff_and_fd(rng, shape):
    yhat, y = jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=shape))
    res = check_jacobian(lambda v: losses.mse(v, y), yhat, lambda v: losses.mse_grad(v, y))
    assert res.ok, res.report()


def test_softmax_ce_against_sklearn(rng):
    from sklearn.metrics import log_loss

    z = rng.normal(scale=2.0, size=(8, 4))
    labels = rng.integers(0, 4, size=8)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(4)[labels]
    expected = log_loss(labels, p, labels=[0, 1, 2, 3])
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
