"""Activations: each hand derivative against jacfwd, jacrev and finite differences, kinks included."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lecture6 import activations as A
from lecture6.gradcheck import check_jacobian

NAMES = sorted(A.ACTIVATIONS)


def _diag_jac(fgrad):
    return lambda z: jnp.diag(fgrad(z))


#: Points where a derivative is easy to get wrong: the kink of ReLU and the jump of Heaviside at 0, just
#: beside them (closer than any finite-difference step), and large |z| where sigmoid and tanh saturate.
SPECIAL = [0.0, 1e-12, -1e-12, 1e-3, -1e-3, 30.0, -30.0]


@settings(max_examples=8, deadline=None)
@given(z=st.lists(st.floats(-6, 6) | st.sampled_from(SPECIAL), min_size=6, max_size=6))
def test_derivative_matches_autodiff_and_fd(z):
    # One shape for every draw: each activation's check is compiled once and reused.
    z = np.asarray(z)
    for name in NAMES:
        f, fgrad = A.get_activation(name)
        res = check_jacobian(f, z, _diag_jac(fgrad))
        assert res.ok, res.report()
        assert all(z[k.col] == 0 or abs(z[k.col]) < 1e-6 for k in res.kinks)  # kinks only at (or next to) 0
        if name not in ("relu", "heaviside"):
            assert not res.kinks


@pytest.mark.parametrize("name", ["relu", "heaviside"])
def test_kink_at_zero_is_accepted_one_sided_derivative(name):
    f, fgrad = A.get_activation(name)
    z = jnp.array([-1.0, 0.0, 2.0])
    res = check_jacobian(f, z, _diag_jac(fgrad))
    assert res.ok, res.report()
    assert [(k.row, k.col) for k in res.kinks] == [(1, 1)]
    assert res.kinks[0].accepted


def test_kink_conventions_match_slide_and_jax():
    # The slide: relu'(z) = 0 for z <= 0, 1 for z > 0; jax.nn.relu's gradient agrees.
    z = jnp.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(A.relu_grad(z), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(jax.vmap(jax.grad(A.relu))(z), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(jax.vmap(jax.grad(jax.nn.relu))(z), [0.0, 0.0, 1.0])
    # ... whereas jnp.maximum splits the difference at 0: why relu is not written with it.
    assert float(jax.grad(lambda t: jnp.maximum(t, 0.0))(0.0)) == 0.5
    np.testing.assert_array_equal(A.heaviside(z), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(A.heaviside_grad(z), [0.0, 0.0, 0.0])


def test_a_wrong_derivative_is_caught():
    # The checker must fail for a plausible mistake: sigma'(z) = sigma(z) (missing the (1 - sigma)).
    z = jnp.linspace(-2.0, 2.0, 5)
    assert not check_jacobian(A.sigmoid, z, _diag_jac(A.sigmoid)).ok
    # and for ReLU with the wrong value at the kink from the far side (2 is not in [0, 1]).
    assert not check_jacobian(A.relu, jnp.array([0.0]), lambda v: jnp.diag(A.relu_grad(v) + 2.0)).ok


def test_values_against_numpy(rng):
    z = rng.normal(scale=3.0, size=11)
    # one compiled program rather than a dozen eager ones
    sig, tanh, relu, ident, soft = jax.jit(lambda z: (A.sigmoid(z), A.tanh(z), A.relu(z), A.identity(z),
                                                      A.softmax(z[None, :])))(z)
    np.testing.assert_allclose(sig, 1.0 / (1.0 + np.exp(-z)), rtol=1e-14)
    np.testing.assert_allclose(tanh, np.tanh(z), rtol=1e-14)
    np.testing.assert_array_equal(relu, np.maximum(z, 0.0))
    np.testing.assert_array_equal(ident, z)
    np.testing.assert_allclose(soft, np.exp(z)[None, :] / np.exp(z).sum(), rtol=1e-13)


def test_sigmoid_is_stable_for_large_inputs():
    z = jnp.array([-1000.0, 1000.0])
    assert np.all(np.isfinite(A.sigmoid(z))) and np.all(np.isfinite(A.sigmoid_grad(z)))


def test_integer_input_becomes_float():
    assert jnp.issubdtype(A.relu(jnp.array([1, -1])).dtype, jnp.floating)


def test_unknown_activation_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"'swish'.*heaviside.*relu"):
        A.get_activation("swish")
