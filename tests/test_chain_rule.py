"""The chain rule: the slides' worked examples against autodiff and FD, and chain / chain_cost."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import chain_rule as cr
from lecture6.chain_rule import chain, chain_cost
from lecture6.gradcheck import assert_jacobian, check_jacobian


def points(rng):
    """Four random points of R^2 (the examples have no singularities to keep away from)."""
    return rng.uniform(-2, 2, size=(4, 2))


def test_chain_rule_example_product_is_three_quarters_zero(rng):
    for x in points(rng):
        np.testing.assert_allclose(chain(cr.f_chain_jacobian(x), cr.g_chain_jacobian(x)), [[0.75, 0.0]])
        assert_jacobian(cr.f_chain, x[:1].repeat(3) + jnp.arange(3.0), cr.f_chain_jacobian)
        assert_jacobian(cr.g_chain, x, cr.g_chain_jacobian)


def test_substitution_equals_composition(rng):
    for x in points(rng):
        np.testing.assert_allclose(cr.f_chain(cr.g_chain(x)), cr.fg_substituted(x), rtol=1e-14)
        assert_jacobian(lambda v: cr.f_chain(cr.g_chain(v)), x, cr.fg_jacobian)


def test_chain_rule_in_the_wrong_order_is_wrong():
    x = np.array([0.3, -1.1])
    order = "Jacobian 1 has 1 rows but Jacobian 0 has 2 columns; give the Jacobians outermost first"
    with pytest.raises(ValueError, match=order):
        chain(cr.g_chain_jacobian(x), cr.f_chain_jacobian(x))  # (3x2)(1x3): undefined
    # h o h: both factors 2x2, so the reversed product is defined, and wrong (h's Jacobians do not commute)
    def hh(v):
        return cr.h_chain(cr.h_chain(v))

    assert_jacobian(hh, x, lambda v: chain(cr.h_chain_jacobian(cr.h_chain(v)), cr.h_chain_jacobian(v)))
    wrong = check_jacobian(hh, x, lambda v: chain(cr.h_chain_jacobian(v), cr.h_chain_jacobian(cr.h_chain(v))))
    assert not wrong.ok and wrong.max_abs_error > 0.1


def test_three_function_chain(rng):
    for x in points(rng):
        assert_jacobian(cr.fgh, x, lambda v: chain(*cr.fgh_jacobian_factors(v)))
        assert_jacobian(cr.h_chain, x, cr.h_chain_jacobian)


def test_evaluating_inner_jacobians_at_the_wrong_point_is_caught():
    x = jnp.array([0.8, 1.3])
    res = check_jacobian(cr.fgh, x, lambda v: chain(cr.f_chain_jacobian(v), cr.g_chain_jacobian(v),
                                                    cr.h_chain_jacobian(cr.h_chain(v))))
    assert not res.ok


# --- chain and chain_cost -------------------------------------------------------------------------


def brute_force_costs(dims):
    """Multiply-add counts of every parenthesization of the chain with these dimensions."""

    def costs(i, j):
        if i == j:
            return [0]
        return [a + b + dims[i] * dims[s + 1] * dims[j + 1]
                for s in range(i, j) for a, b in itertools.product(costs(i, s), costs(s + 1, j))]

    return costs(0, len(dims) - 2)


@pytest.mark.parametrize("dims", [(1, 3, 2), (1, 7, 5, 3), (10, 1, 10, 1, 10), (4, 9, 2, 8, 3, 6), (3, 3)])
def test_chain_matches_direct_product_and_cost_matches_brute_force(dims, rng):
    shapes = list(zip(dims[:-1], dims[1:]))
    Js = [rng.normal(size=s) for s in shapes]
    direct = Js[0]
    for J in Js[1:]:
        direct = direct @ J
    np.testing.assert_allclose(chain(*Js), direct, rtol=1e-12, atol=1e-12)
    cost = chain_cost(shapes)
    all_costs = brute_force_costs(list(dims))
    assert cost["optimal"] == min(all_costs)
    k = len(dims) - 1
    assert cost["reverse"] == sum(dims[0] * dims[i] * dims[i + 1] for i in range(1, k))
    assert cost["forward"] == sum(dims[i - 1] * dims[i] * dims[-1] for i in range(1, k))
    assert cost["reverse"] in all_costs and cost["forward"] in all_costs


def test_chain_multiplies_in_the_optimal_order():
    # (10x1)(1x10)(10x1): left to right costs 100 + 100, the optimal J1 (J2 J3) costs 10 + 10.
    cost = chain_cost([(10, 1), (1, 10), (10, 1)])
    assert (cost["reverse"], cost["optimal"], cost["order"]) == (200, 20, "(J1 (J2 J3))")
    jaxpr = jax.make_jaxpr(chain)(jnp.ones((10, 1)), jnp.ones((1, 10)), jnp.ones((10, 1)))
    products = [tuple(v.aval.shape for v in e.invars) for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert products == [((1, 10), (10, 1)), ((10, 1), (1, 1))]


def test_chain_cost_prefers_reverse_for_scalar_output():
    cost = chain_cost([(1, 50), (50, 50), (50, 50)])
    assert cost["optimal"] == cost["reverse"] < cost["forward"]
    assert cost["order"] == "((J1 J2) J3)"


def test_chain_rejects_mismatched_shapes_and_wrong_order():
    with pytest.raises(ValueError, match="Jacobian 1 has 3 rows but Jacobian 0 has 2 columns"):
        chain(jnp.zeros((3, 2)), jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="must be 2-D"):
        chain(jnp.zeros(3))
