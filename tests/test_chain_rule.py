"""The slides' worked Jacobian and chain-rule examples, each checked against autodiff and FD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import chain_rule as cr
from lecture6.jacobian import assert_jacobian, chain, check_jacobian


def points(rng, shape, k=4, away_from_zero=False):
    pts = rng.uniform(-2, 2, size=(k, *shape))
    if away_from_zero:
        pts = np.sign(pts) * (0.5 + np.abs(pts))
    return [jnp.asarray(p) for p in pts]


def test_f_example_jacobian(rng):
    for x in points(rng, (2,), away_from_zero=True):
        assert_jacobian(cr.f_example, x, cr.f_example_jacobian)


def test_f_example_jacobian_values_as_on_the_slide():
    x = jnp.array([3.0, 2.0])
    np.testing.assert_allclose(cr.f_example_jacobian(x), [[2, 1], [0, np.pi], [-1 / 2, 3 / 4]])


def test_a_wrong_entry_in_the_example_is_caught():
    x = jnp.array([3.0, 2.0])
    res = check_jacobian(cr.f_example, x, lambda x: cr.f_example_jacobian(x).at[2, 1].set(-x[0] / x[1] ** 2))
    assert not res.ok and res.worst == (2, 1)


def test_chain_rule_example_product_is_three_quarters_zero(rng):
    for x in points(rng, (2,)):
        np.testing.assert_allclose(chain(cr.f_chain_jacobian(x), cr.g_chain_jacobian(x)), [[0.75, 0.0]])
        assert_jacobian(cr.f_chain, x[:1].repeat(3) + jnp.arange(3.0), cr.f_chain_jacobian)
        assert_jacobian(cr.g_chain, x, cr.g_chain_jacobian)


def test_substitution_equals_composition(rng):
    for x in points(rng, (2,)):
        np.testing.assert_allclose(cr.f_chain(cr.g_chain(x)), cr.fg_substituted(x), rtol=1e-14)
        assert_jacobian(lambda v: cr.f_chain(cr.g_chain(v)), x, cr.fg_jacobian)


def test_chain_rule_in_the_wrong_order_is_wrong():
    x = jnp.array([0.3, -1.1])
    with pytest.raises(ValueError):
        chain(cr.g_chain_jacobian(x), cr.f_chain_jacobian(x))  # (3x2)(1x3): undefined
    truth = jax.jacfwd(lambda v: cr.h_chain(cr.h_chain(v)))(x)
    wrong = cr.h_chain_jacobian(x) @ cr.h_chain_jacobian(cr.h_chain(x))
    right = cr.h_chain_jacobian(cr.h_chain(x)) @ cr.h_chain_jacobian(x)
    np.testing.assert_allclose(right, truth, rtol=1e-12)
    assert np.max(np.abs(wrong - truth)) > 0.1


def test_three_function_chain(rng):
    for x in points(rng, (2,)):
        assert_jacobian(cr.fgh, x, lambda v: chain(*cr.fgh_jacobian_factors(v)))
        assert_jacobian(cr.h_chain, x, cr.h_chain_jacobian)


def test_evaluating_inner_jacobians_at_the_wrong_point_is_caught():
    x = jnp.array([0.8, 1.3])
    res = check_jacobian(cr.fgh, x, lambda v: chain(cr.f_chain_jacobian(v), cr.g_chain_jacobian(v),
                                                    cr.h_chain_jacobian(cr.h_chain(v))))
    assert not res.ok


def test_gradient_is_transposed_jacobian(rng):
    w = jnp.array([0.4, 2.0])
    for xy in points(rng, (2,), away_from_zero=True):
        g, J = cr.gradient_as_jacobian_transpose(lambda v: cr.f_perspectives(v, w), xy)
        assert g.shape == (2,) and J.shape == (1, 2)
        np.testing.assert_array_equal(J, g[None, :])


def test_two_perspectives(rng):
    for xy, w in zip(points(rng, (2,), away_from_zero=True), points(rng, (2,))):
        assert_jacobian(lambda v: cr.f_perspectives(v, w), xy, lambda v: cr.f_perspectives_dx(v, w))
        assert_jacobian(lambda v: cr.f_perspectives(xy, v), w, lambda v: cr.f_perspectives_dw(xy, v))
    # the two perspectives are different Jacobians of the same function
    xy, w = jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0])
    np.testing.assert_allclose(cr.f_perspectives_dx(xy, w), [[6.0, -1.0]])
    np.testing.assert_allclose(cr.f_perspectives_dw(xy, w), [[2.0, 0.5]])
