"""The Jacobian toolkit: vec/unvec, the checker (including kinks and its reports), chain, jacobian."""

import itertools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lecture6.jacobian import (
    assert_gradient,
    assert_jacobian,
    chain,
    chain_cost,
    check_gradient,
    check_jacobian,
    finite_difference_jacobian,
    jacobian,
    unvec,
    vec,
)


def test_vec_is_row_major_and_unvec_inverts():
    W = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(vec(W), [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(unvec(vec(W), (2, 3)), W)


def test_unvec_rejects_wrong_size_and_rank():
    with pytest.raises(ValueError, match="length 5 cannot fill shape"):
        unvec(jnp.zeros(5), (2, 3))
    with pytest.raises(ValueError, match="1-D"):
        unvec(jnp.zeros((2, 3)), (6,))


# --- the checker on known-correct and known-wrong Jacobians ---------------------------------------


def f3(x):
    return jnp.stack([2 * x[0] + x[1], jnp.pi * x[1], -x[0] / x[1]])


def J3(x):
    return jnp.array([[2.0, 1.0], [0.0, jnp.pi], [-1 / x[1], x[0] / x[1] ** 2]])


X3 = jnp.array([0.3, 1.7])


def test_correct_jacobian_passes_all_routes():
    res = check_jacobian(f3, X3, J3)
    assert res.ok, res.report()
    assert set(res.jacobians) == {"hand", "jacfwd", "jacrev", "fd"}
    for route in ("jacfwd", "jacrev"):
        np.testing.assert_allclose(res.jacobians[route], J3(X3), rtol=1e-14)
    np.testing.assert_allclose(res.jacobians["fd"], J3(X3), rtol=1e-8)


def test_without_hand_checks_autodiff_against_fd():
    res = check_jacobian(f3, X3)
    assert res.ok and res.reference == "fd"


def test_one_entry_off_by_1e3_relative_is_caught_and_named():
    def wrong(x):
        return J3(x).at[2, 1].multiply(1 + 1e-3)

    res = check_jacobian(f3, X3, wrong)
    assert not res.ok
    assert res.worst == (2, 1)
    assert res.mismatches == [(2, 1)]
    assert res.max_rel_error == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(AssertionError, match=r"worst entry \(row 2, col 1\) = df\[2\]/dx\[1\]"):
        assert_jacobian(f3, X3, wrong)


def test_sign_flip_is_caught_and_named():
    res = check_jacobian(f3, X3, lambda x: J3(x).at[0, 1].multiply(-1))
    assert not res.ok and res.worst == (0, 1)
    assert any("opposite sign" in n for n in res.notes)


def test_transposed_square_jacobian_is_named():
    def f(x):
        return jnp.stack([x[0] * x[1], x[0] + 3 * x[1] ** 2])

    def J(x):
        return jnp.array([[x[1], x[0]], [1.0, 6 * x[1]]])

    x = jnp.array([0.5, -2.0])
    assert check_jacobian(f, x, J).ok
    res = check_jacobian(f, x, lambda x: J(x).T)
    assert not res.ok
    assert any("TRANSPOSE" in n for n in res.notes)
    assert res.worst in {(0, 1), (1, 0)}


def test_transposed_rectangular_jacobian_is_rejected_with_a_hint():
    with pytest.raises(ValueError, match="TRANSPOSED"):
        check_jacobian(f3, X3, lambda x: J3(x).T)


def test_matrix_input_reports_index_in_original_shape():
    x = jnp.array([1.0, -2.0, 0.5])

    def f(W):
        return W @ x

    def J(W):
        return jnp.kron(jnp.eye(2), x[None, :]).at[1, 5].add(0.1)

    W = jnp.arange(6.0).reshape(2, 3)
    res = check_jacobian(f, W, J)
    assert not res.ok and res.worst == (1, 5)
    with pytest.raises(AssertionError, match=r"\(row 1, col 5\) = df\[1\]/dx\[1, 2\]"):
        assert_jacobian(f, W, J)


def test_matrix_output_uses_vec_on_both_sides():
    # f(X) = A X B has d vec[f] / d vec[X] = kron(A, B^T) with row-major vec.
    rng = np.random.default_rng(0)
    A, B, X = (jnp.asarray(rng.normal(size=s)) for s in [(2, 3), (4, 5), (3, 4)])
    res = check_jacobian(lambda X: A @ X @ B, X, lambda X: jnp.kron(A, B.T))
    assert res.ok, res.report()
    res = check_jacobian(lambda X: A @ X @ B, X, lambda X: jnp.kron(B.T, A))  # column-major: wrong
    assert not res.ok


def test_scalar_function_accepts_gradient_or_jacobian():
    def f(W):
        return jnp.sum(jnp.sin(W) * W)

    W = jnp.array([[0.1, 0.2], [0.3, -0.4]])
    assert check_jacobian(f, W, jax.grad(f)).ok  # gradient in the shape of W
    assert check_jacobian(f, W, lambda W: vec(jax.grad(f)(W))[None, :]).ok  # 1 x 4 Jacobian
    assert not check_jacobian(f, W, lambda W: 2 * jax.grad(f)(W)).ok


def test_float32_inputs_use_float32_tolerances():
    x32 = X3.astype(jnp.float32)
    res = check_jacobian(f3, x32, J3)
    assert res.ok, res.report()
    assert (res.rtol, res.atol) == (1e-4, 1e-5)
    # an entry off by 1e-2 relative is still caught in float32
    assert not check_jacobian(f3, x32, lambda x: J3(x).at[1, 1].multiply(1.01)).ok


def test_nan_in_x_is_a_clear_error():
    with pytest.raises(ValueError, match="NaN or inf"):
        check_jacobian(f3, jnp.array([jnp.nan, 1.0]), J3)


def test_wrong_shape_of_hand_jacobian_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected the 2-D Jacobian \(3, 2\)"):
        check_jacobian(f3, X3, lambda x: jnp.zeros((3, 3)))


# --- kinks: no spurious failure, no silent pass -----------------------------------------------------


def relu_jac(z):
    return jnp.diag((z > 0).astype(z.dtype))


def test_relu_at_zero_accepts_either_one_sided_derivative_and_says_so():
    z = jnp.array([0.0, 1.5, -2.0])
    for hand in (relu_jac, lambda z: jnp.diag((z >= 0).astype(z.dtype))):
        res = check_jacobian(jax.nn.relu, z, hand)
        assert res.ok, res.report()
        assert [(k.row, k.col) for k in res.kinks] == [(0, 0)]
        assert res.kinks[0].accepted and "one-sided" in res.kinks[0].why
        assert "kink at (row 0, col 0)" in res.report()


def test_relu_subgradient_between_one_sided_derivatives_is_accepted():
    res = check_jacobian(jax.nn.relu, jnp.array([0.0]), lambda z: jnp.array([[0.5]]))
    assert res.ok and "subgradient" in res.kinks[0].why


def test_wrong_value_at_relu_kink_is_rejected():
    res = check_jacobian(jax.nn.relu, jnp.array([0.0, 1.0]), lambda z: jnp.diag(jnp.array([2.0, 1.0])))
    assert not res.ok
    assert not res.kinks[0].accepted and res.worst == (0, 0)


def test_wrong_value_just_beside_a_kink_is_not_excused():
    # 1e-9 from the kink, f is differentiable with derivative 1: the kink logic must not accept 0.
    z = jnp.array([1e-9])
    assert check_jacobian(jax.nn.relu, z, lambda z: jnp.array([[1.0]])).ok
    res = check_jacobian(jax.nn.relu, z, lambda z: jnp.array([[0.0]]))
    assert not res.ok and not res.kinks


def test_heaviside_jump_accepts_the_finite_side_only():
    def H(z):
        return jnp.heaviside(z, 1.0)

    z = jnp.array([0.0, 2.0])
    res = check_jacobian(H, z, lambda z: jnp.zeros((2, 2)))
    assert res.ok and "jumps" in res.kinks[0].why
    assert not check_jacobian(H, z, lambda z: jnp.diag(jnp.array([1.0, 0.0]))).ok


def test_fd_jacobian_is_independent_of_autodiff():
    np.testing.assert_allclose(finite_difference_jacobian(f3, X3), J3(X3), rtol=1e-8, atol=1e-10)


# --- property test: random compositions of affine and element-wise maps -----------------------------

ELEMENTWISE = {
    "tanh": (jnp.tanh, lambda u: 1 - jnp.tanh(u) ** 2),
    "sin": (jnp.sin, jnp.cos),
    "softplus": (jax.nn.softplus, jax.nn.sigmoid),
    "square": (jnp.square, lambda u: 2 * u),
    "sigmoid": (jax.nn.sigmoid, lambda u: jax.nn.sigmoid(u) * (1 - jax.nn.sigmoid(u))),
}


def random_composition(seed, in_shape, n_maps):
    """A random f = maps[-1] o ... o maps[0] on vec(x), with its Jacobian built by the chain rule by hand."""
    rng = np.random.default_rng(seed)
    maps = []
    width = int(np.prod(in_shape))
    for k in range(n_maps):
        if k % 2 == 0:
            out = int(rng.integers(1, 6))
            A = jnp.asarray(rng.normal(size=(out, width)) / np.sqrt(width))
            c = jnp.asarray(rng.normal(size=out))
            maps.append(("affine", A, c))
            width = out
        else:
            maps.append(("elementwise", *ELEMENTWISE[rng.choice(sorted(ELEMENTWISE))]))

    def f(x):
        u = vec(x)
        for m in maps:
            u = m[1] @ u + m[2] if m[0] == "affine" else m[1](u)
        return u

    def jac(x):
        u, factors = vec(x), []
        for m in maps:
            if m[0] == "affine":
                factors.append(m[1])
                u = m[1] @ u + m[2]
            else:
                factors.append(jnp.diag(m[2](u)))
                u = m[1](u)
        return chain(*reversed(factors))  # outermost first

    return f, jac


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    in_shape=st.sampled_from([(1,), (3,), (5,), (2, 3), (3, 1), (4, 2)]),
    n_maps=st.integers(1, 5),
)
def test_random_compositions_hand_equals_jacfwd_jacrev_fd(seed, in_shape, n_maps):
    f, jac = random_composition(seed, in_shape, n_maps)
    x = jnp.asarray(np.random.default_rng(seed + 1).normal(size=in_shape))
    res = check_jacobian(f, x, jac)
    assert res.ok, res.report()
    np.testing.assert_allclose(res.jacobians["jacrev"], res.jacobians["hand"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.jacobians["fd"], res.jacobians["hand"], rtol=1e-5, atol=1e-6)
    # ...and the same composition with one factor perturbed is caught.
    res_bad = check_jacobian(f, x, lambda x: jac(x) * (1 + 1e-3 * (jnp.arange(jac(x).size) == 0).reshape(jac(x).shape)))
    assert res_bad.ok == bool(jnp.abs(jac(x)[0, 0]) < 1e-9)


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
    Js = [jnp.asarray(rng.normal(size=s)) for s in shapes]
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


def test_chain_cost_prefers_reverse_for_scalar_output():
    cost = chain_cost([(1, 50), (50, 50), (50, 50)])
    assert cost["optimal"] == cost["reverse"] < cost["forward"]
    assert cost["order"] == "((J1 J2) J3)"


def test_chain_rejects_mismatched_shapes_and_wrong_order():
    with pytest.raises(ValueError, match="Jacobian 1 has 3 rows but Jacobian 0 has 2 columns"):
        chain(jnp.zeros((3, 2)), jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="must be 2-D"):
        chain(jnp.zeros(3))


@pytest.mark.parametrize("shape_in,n_out,expected", [((50,), 2, "rev"), ((2,), 50, "fwd"), ((4, 5), 20, "fwd")])
def test_jacobian_auto_mode_picks_by_shape_and_agrees(shape_in, n_out, expected, rng, monkeypatch):
    A = jnp.asarray(rng.normal(size=(n_out, int(np.prod(shape_in)))))

    def f(x):
        return jnp.tanh(A @ vec(x))

    x = jnp.asarray(rng.normal(size=shape_in))
    used = []
    for name in ("jacfwd", "jacrev"):
        orig = getattr(jax, name)
        monkeypatch.setattr(jax, name, lambda fn, _o=orig, _n=name: (used.append(_n), _o(fn))[1])
    J = jacobian(f, x)
    assert used == ["jac" + expected]
    np.testing.assert_allclose(J, jacobian(f, x, mode="fwd"), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(J, finite_difference_jacobian(f, x), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="mode must be"):
        jacobian(f, x, mode="sideways")


# --- gradients of functions of a pytree (an MLP's params) -------------------------------------------


def _mlp_problem():
    from lecture6 import backprop, mlp
    from lecture6.data import xor

    X, y = xor()
    params = mlp.init_mlp(jax.random.key(3), [2, 3, 1])

    def f(p):
        return backprop.objective(p, X, y, activation="tanh", loss="mse", l2=0.1)

    def g(p):
        return backprop.backprop(p, X, y, activation="tanh", loss="mse", l2=0.1)

    return f, g, params


def test_check_gradient_on_a_pytree_passes_for_backprop():
    f, g, params = _mlp_problem()
    res = assert_gradient(f, params, g)
    assert res.jacobians["hand"].shape == (1, 13)
    np.testing.assert_allclose(res.jacobians["fd"], res.jacobians["hand"], rtol=1e-6, atol=1e-9)


def test_check_gradient_names_the_wrong_leaf_and_index():
    f, g, params = _mlp_problem()

    def wrong(p):
        grads = g(p)
        grads[1]["W"] = grads[1]["W"].at[0, 2].multiply(1.01)  # dJ/dW2[0, 2] off by 1%
        return grads

    res = check_gradient(f, params, wrong)
    assert not res.ok
    with pytest.raises(AssertionError, match=r"df/dparams\[1\]\['W'\]\[0, 2\]"):
        assert_gradient(f, params, wrong)


def test_check_gradient_rejects_wrong_structure_and_non_scalar_f():
    f, g, params = _mlp_problem()
    with pytest.raises(ValueError, match="structure and shapes of params"):
        check_gradient(f, params, lambda p: g(p)[::-1])
    with pytest.raises(ValueError, match="scalar f"):
        check_gradient(lambda p: p[0]["b"], params, g)
