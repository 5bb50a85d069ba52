"""The Jacobian checker: verdicts, reports, kinks, finite differences as a judge, float32, pytrees."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lecture6 import backprop
from lecture6.chain_rule import chain
from lecture6.gradcheck import (
    assert_gradient,
    assert_jacobian,
    check_gradient,
    check_jacobian,
    finite_difference_jacobian,
)
from lecture6.matrix_derivative import vec

VERDICT_FIELDS = ("autodiff_finite", "autodiff_modes_agree", "autodiff_matches_fd", "hand_matches_autodiff",
                  "kinks_explain")


def f3(x):
    return jnp.stack([2 * x[0] + x[1], jnp.pi * x[1], -x[0] / x[1]])


def J3(x):
    return jnp.array([[2.0, 1.0], [0.0, jnp.pi], [-1 / x[1], x[0] / x[1] ** 2]])


X3 = np.array([0.3, 1.7])
J3_AT_X3 = np.array([[2.0, 1.0], [0.0, np.pi], [-1 / 1.7, 0.3 / 1.7**2]])  # by hand, in NumPy


# --- known-correct and known-wrong Jacobians ---------------------------------------------------------


def test_correct_jacobian_passes_all_routes():
    res = check_jacobian(f3, X3, J3)
    assert res.ok, res.report()
    assert all(getattr(res, name) is True for name in VERDICT_FIELDS)
    assert set(res.jacobians) == {"hand", "jacfwd", "jacrev", "fd"}
    for route in ("jacfwd", "jacrev"):
        np.testing.assert_allclose(res.jacobians[route], J3_AT_X3, rtol=1e-14)
    np.testing.assert_allclose(res.jacobians["fd"], J3_AT_X3, rtol=1e-8)


def test_without_hand_checks_autodiff_against_fd():
    res = check_jacobian(f3, X3)
    assert res.ok and res.reference == "fd" and res.hand_matches_autodiff is None


def test_one_entry_off_by_1e3_relative_is_caught_and_named():
    def wrong(x):
        return J3(x).at[2, 1].multiply(1 + 1e-3)

    res = check_jacobian(f3, X3, wrong)
    assert not res.ok
    assert res.hand_matches_autodiff is False and res.autodiff_matches_fd and res.autodiff_modes_agree
    assert res.worst == (2, 1)
    assert res.mismatches == [(2, 1)]
    assert res.max_rel_error == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(AssertionError, match=r"worst entry \(row 2, col 1\) = df\[2\]/dx\[1\]"):
        assert_jacobian(f3, X3, wrong)


def test_sign_flip_is_caught_and_named():
    res = check_jacobian(f3, X3, lambda x: J3(x).at[0, 1].multiply(-1))
    assert not res.ok and res.worst == (0, 1)
    assert any("opposite sign" in n for n in res.notes)


def test_constant_factor_is_named():
    res = check_jacobian(f3, X3, lambda x: 2 * J3(x))
    assert not res.ok and any("2 times the Jacobian" in n for n in res.notes)


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
    A, B, X = (rng.normal(size=s) for s in [(2, 3), (4, 5), (3, 4)])
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


def test_hand_jacobian_written_with_numpy_is_accepted():
    # Not traceable (np.asarray of the point): called as it is instead of compiled.
    def J_numpy(x):
        x1, x2 = np.asarray(x)
        return np.array([[2.0, 1.0], [0.0, np.pi], [-1 / x2, x1 / x2**2]])

    assert check_jacobian(f3, X3, J_numpy).ok
    assert not check_jacobian(f3, X3, lambda x: J_numpy(x) * 1.001).ok


@pytest.mark.parametrize(("x", "error", "match"), [
    (jnp.array([jnp.nan, 1.0]), ValueError, "NaN or inf"),
    (jnp.zeros((0,)), ValueError, r"non-empty x, got shape \(0,\)"),
    (jnp.array([1, 2]), TypeError, "floating-point x, got dtype int"),
])
def test_bad_points_are_clear_errors(x, error, match):
    with pytest.raises(error, match=match):
        check_jacobian(f3, x, J3)


def test_wrong_shape_of_hand_jacobian_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected the 2-D Jacobian \(3, 2\)"):
        check_jacobian(f3, X3, lambda x: jnp.zeros((3, 3)))


def test_fd_jacobian_is_independent_of_autodiff():
    np.testing.assert_allclose(finite_difference_jacobian(f3, X3), J3_AT_X3, rtol=1e-8, atol=1e-10)


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
    assert check_jacobian(jax.nn.relu, z).ok  # autodiff itself at the kink, judged the same way


def test_relu_subgradient_between_one_sided_derivatives_is_accepted():
    res = check_jacobian(jax.nn.relu, jnp.array([0.0]), lambda z: jnp.array([[0.5]]))
    assert res.ok and "subgradient" in res.kinks[0].why


def test_wrong_value_at_relu_kink_is_rejected():
    res = check_jacobian(jax.nn.relu, jnp.array([0.0, 1.0]), lambda z: jnp.diag(jnp.array([2.0, 1.0])))
    assert not res.ok and not res.kinks_explain
    assert not res.kinks[0].accepted and res.worst == (0, 0)


def test_wrong_value_just_beside_a_kink_is_not_excused():
    # 1e-9 from the kink, f is differentiable with derivative 1: the kink logic must not accept 0, and
    # the default step (6e-6, across the kink) must not make finite differences cry wolf either.
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


def test_a_relu_layer_with_a_unit_exactly_at_zero_passes():
    # z = W x with z[0] = 0 exactly: every entry of row 0 of dz/dvec[W] sits at a kink of relu.
    x = jnp.array([1.0, 1.0])

    def f(W):
        return jax.nn.relu(W @ x)

    def J(W):
        return jnp.kron(jnp.diag((W @ x > 0).astype(W.dtype)), x[None, :])

    W = jnp.array([[1.0, -1.0], [0.5, 2.0]])
    res = check_jacobian(f, W, J)
    assert res.ok, res.report()
    assert {(k.row, k.col) for k in res.kinks} == {(0, 0), (0, 1)}


def test_rounding_in_a_large_function_value_does_not_cry_wolf():
    # |f| ~ 1e6 with derivatives ~ 1: a central difference carries ~4e-5 of rounding, which the
    # finite-difference comparison allows for (FD_NOISE_ULPS) instead of blaming autodiff.
    res = check_jacobian(lambda x: 1e6 + jnp.sin(x), jnp.array([0.3, -1.2]), lambda x: jnp.diag(jnp.cos(x)))
    assert res.ok, res.report()


# --- finite differences judge autodiff ----------------------------------------------------------------


@jax.custom_jvp
def softplus_wrong_rule(x):
    """softplus, with a custom_jvp rule that has the classic sign slip: sigmoid(-x) for sigmoid(x)."""
    return jnp.logaddexp(x, 0.0)


@softplus_wrong_rule.defjvp
def _softplus_wrong_rule_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus_wrong_rule(x), jax.nn.sigmoid(-x) * t


@jax.custom_jvp
def x_sin_x_affine_rule(x):
    """``x sin x``, whose jvp rule forgot to multiply one term of the product rule by the tangent."""
    return x * jnp.sin(x)


@x_sin_x_affine_rule.defjvp
def _x_sin_x_affine_rule_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x_sin_x_affine_rule(x), jnp.sin(x) * t + x * jnp.cos(x)  # "+ x cos(x) * t" was meant


Z = np.array([0.7, -1.3, 2.1])


def test_a_hand_jacobian_copying_a_wrong_custom_jvp_fails():
    copy = check_jacobian(softplus_wrong_rule, Z, lambda z: jnp.diag(jax.nn.sigmoid(-z)))
    assert copy.hand_matches_autodiff and copy.autodiff_modes_agree  # it agrees with autodiff...
    assert not copy.autodiff_matches_fd and not copy.ok  # ...but autodiff is wrong, and FD says so
    assert copy.fd_mismatches and {(i, i) for i in range(3)} == set(copy.fd_mismatches)
    assert "autodiff DISAGREES with finite differences at 3 smooth entries" in copy.report()
    # the right derivative fails too (it disagrees with autodiff), and autodiff alone fails
    right = check_jacobian(softplus_wrong_rule, Z, lambda z: jnp.diag(jax.nn.sigmoid(z)))
    assert not right.ok and not right.hand_matches_autodiff
    assert not check_jacobian(softplus_wrong_rule, Z).ok
    # ...while the same function with JAX's own (right) rule passes
    assert check_jacobian(jax.nn.softplus, Z, lambda z: jnp.diag(jax.nn.sigmoid(z))).ok


def test_jacfwd_and_jacrev_disagree_for_a_rule_not_linear_in_the_tangent():
    # jacfwd pushes each basis tangent through the rule, so it sees the stray x cos(x) in every column;
    # jacrev transposes the rule's linear part and drops it.
    hand = lambda z: jnp.diag(jnp.sin(z) + z * jnp.cos(z))  # noqa: E731  (the true derivative)
    res = check_jacobian(x_sin_x_affine_rule, Z, hand)
    assert not res.autodiff_modes_agree and not res.ok
    assert len(res.mode_mismatches) == 9
    stray = (Z * np.cos(Z))[:, None] * np.ones((3, 3))  # in every column of row i
    np.testing.assert_allclose(res.jacobians["jacfwd"], np.diag(np.sin(Z)) + stray, rtol=1e-12)
    np.testing.assert_allclose(res.jacobians["jacrev"], np.diag(np.sin(Z)), rtol=1e-12)
    assert "jacfwd and jacrev DISAGREE" in res.report()


@jax.custom_vjp
def tanh_wrong_bwd(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    return jnp.tanh(x), x


def _tanh_bwd_wrong(x, g):
    return ((1 - jnp.tanh(x)) * g,)  # 1 - tanh for 1 - tanh^2


tanh_wrong_bwd.defvjp(_tanh_fwd, _tanh_bwd_wrong)


def test_a_custom_vjp_with_a_wrong_backward_rule_is_caught_by_fd():
    # Forward mode cannot differentiate a custom_vjp function: jacrev stands for autodiff, and FD judges it.
    copy = check_jacobian(tanh_wrong_bwd, Z, lambda z: jnp.diag(1 - jnp.tanh(z)))
    assert copy.autodiff == "jacrev" and "jacfwd" not in copy.jacobians
    assert copy.hand_matches_autodiff and not copy.autodiff_matches_fd and not copy.ok
    assert "jacrev" in copy.report().splitlines()[1] and any("custom_vjp" in n for n in copy.notes)


# --- compiled programs: closed-over arrays are arguments, shared through jax's compilation cache ----------

HITS, REQUESTS = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/compile_requests_use_cache"


def compile_events(fn):
    """``fn()`` and the names of the compilation-cache events it recorded."""
    events = []

    def listen(name, **_):
        events.append(name)

    jax.monitoring.register_event_listener(listen)
    try:
        return fn(), events
    finally:
        jax.monitoring.unregister_event_listener(listen)


def test_functions_of_the_same_structure_share_a_program_but_not_their_constants(rng):
    # The suite runs with jax's persistent compilation cache on (tests/conftest.py), as a user may. A new
    # closure over other arrays lowers to the same program, its arrays passed as arguments: every program
    # of the second check comes from the cache, and runs with A2, not with the A1 of the first.
    A1, A2 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    assert check_jacobian(lambda v: jnp.tanh(A1 @ v), X3, lambda v: (1 - jnp.tanh(A1 @ v) ** 2)[:, None] * A1).ok
    res, events = compile_events(lambda: check_jacobian(lambda v: jnp.tanh(A2 @ v), X3,
                                                        lambda v: (1 - jnp.tanh(A2 @ v) ** 2)[:, None] * A2))
    assert res.ok and events.count(REQUESTS) == 2 and events.count(HITS) == 2, events  # hand and evaluation
    np.testing.assert_allclose(res.jacobians["jacfwd"], (1 - np.tanh(A2 @ X3) ** 2)[:, None] * A2, rtol=1e-14)
    assert not check_jacobian(lambda v: jnp.tanh(A2 @ v), X3, lambda v: (1 - jnp.tanh(A1 @ v) ** 2)[:, None] * A1).ok
    # a Python scalar is baked into the program: 2.0 and 3.0 must not share one
    assert check_jacobian(lambda v: 2.0 * v, X3, lambda v: 2.0 * jnp.eye(2)).ok
    assert not check_jacobian(lambda v: 3.0 * v, X3, lambda v: 2.0 * jnp.eye(2)).ok


def test_custom_rules_with_the_same_name_do_not_share_a_program():
    def make(factor):
        @jax.custom_jvp
        def g(x):
            return jnp.sin(x)

        g.defjvp(lambda p, t: (g(p[0]), factor * jnp.cos(p[0]) * t[0]))
        return g

    right, wrong = make(1.0), make(2.0)
    assert check_jacobian(right, Z, lambda z: jnp.diag(jnp.cos(z))).ok
    assert not check_jacobian(wrong, Z, lambda z: jnp.diag(2.0 * jnp.cos(z))).ok
    assert check_jacobian(right, Z, lambda z: jnp.diag(jnp.cos(z))).ok


# --- float32 ----------------------------------------------------------------------------------------


def test_float32_inputs_use_float32_tolerances():
    x32 = X3.astype(jnp.float32)
    res = check_jacobian(f3, x32, J3)
    assert res.ok, res.report()
    assert (res.rtol, res.atol) == (1e-4, 1e-5)
    # an entry off by 1e-2 relative is still caught in float32
    assert not check_jacobian(f3, x32, lambda x: J3(x).at[1, 1].multiply(1.01)).ok


def test_float32_with_x64_off_as_scripts_run():
    # The scripts' default: no x64, so finite differences are float32 too (step ~5e-3, FD tolerance 1e-2).
    # jax.enable_x64(False) switches the mode for this block only, as a process that never enabled it.
    with jax.enable_x64(False):
        x = jnp.array([0.3, 1.7])
        assert x.dtype == jnp.float32
        res = check_jacobian(f3, x, J3)
        assert res.ok, res.report()
        assert (res.rtol, res.atol, res.fd_rtol, res.fd_atol) == (1e-4, 1e-5, 1e-2, 1e-2)
        x1, x2 = np.asarray(x, dtype=np.float64)
        fd_err = np.max(np.abs(res.jacobians["fd"] - [[2, 1], [0, np.pi], [-1 / x2, x1 / x2**2]]))
        assert 1e-7 < fd_err < 1e-2  # a float32 difference: far less accurate than float64's
        wrong = check_jacobian(f3, x, lambda x: J3(x).at[1, 1].multiply(1.01))
        assert not wrong.ok and wrong.worst == (1, 1)
        copy = check_jacobian(softplus_wrong_rule, Z.astype(jnp.float32), lambda z: jnp.diag(jax.nn.sigmoid(-z)))
        assert copy.hand_matches_autodiff and not copy.autodiff_matches_fd
        assert check_jacobian(jax.nn.relu, jnp.array([0.0, 1.5]), relu_jac).ok


# --- property test: random compositions of affine and element-wise maps -----------------------------

ELEMENTWISE = [  # (sigma, sigma') pairs: saturating, periodic, unbounded (each one adds to the compile time)
    (jnp.tanh, lambda u: 1 - jnp.tanh(u) ** 2),
    (jnp.sin, jnp.cos),
    (jnp.square, lambda u: 2 * u),
]


def random_composition(seed, in_shape, n_out, width=4):
    """f = s2(A2 s1(A1 vec(x) + c1) + c2) with random A, c and element-wise s1, s2, and its Jacobian
    by the chain rule by hand. Each s is picked from ELEMENTWISE by a one-hot weight vector (data, not
    code), so every draw of one shape shares one compiled program."""
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(in_shape))
    A = [rng.normal(size=(width, n_in)) / np.sqrt(n_in), rng.normal(size=(n_out, width)) / np.sqrt(width)]
    c = [rng.normal(size=width), rng.normal(size=n_out)]
    pick = [np.eye(len(ELEMENTWISE))[i] for i in rng.integers(0, len(ELEMENTWISE), size=2)]

    # (w as a jnp array: w[i] of a NumPy w would be a scalar baked into the program, one program per pick)
    def sigma(w, z):
        return sum(jnp.asarray(w)[i] * s(z) for i, (s, _) in enumerate(ELEMENTWISE))

    def sigma_grad(w, z):
        return sum(jnp.asarray(w)[i] * ds(z) for i, (_, ds) in enumerate(ELEMENTWISE))

    def f(x):
        u = vec(x)
        for A_, c_, w in zip(A, c, pick):
            u = sigma(w, A_ @ u + c_)
        return u

    def jac(x):
        u, factors = vec(x), []
        for A_, c_, w in zip(A, c, pick):
            z = A_ @ u + c_
            factors += [A_, jnp.diag(sigma_grad(w, z))]
            u = sigma(w, z)
        return chain(*reversed(factors))  # outermost first

    return f, jac


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shapes=st.sampled_from([((3,), 3), ((2, 2), 1)]))
def test_random_compositions_hand_equals_jacfwd_jacrev_fd(seed, shapes):
    in_shape, n_out = shapes  # a vector and a matrix input; a square Jacobian and a gradient
    f, jac = random_composition(seed, in_shape, n_out)
    x = np.random.default_rng(seed + 1).normal(size=in_shape)
    res = check_jacobian(f, x, jac)
    assert res.ok, res.report()
    np.testing.assert_allclose(res.jacobians["jacrev"], res.jacobians["hand"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.jacobians["fd"], res.jacobians["hand"], rtol=1e-5, atol=1e-6)
    # ...and the same composition with its largest entry off by 1e-3 relative is caught (unless every
    # entry is below ~1e-6, where 1e-3 of it is inside atol = 1e-9 on a scale of at least 1).
    J = res.jacobians["hand"]
    worst = np.unravel_index(np.argmax(np.abs(J)), J.shape)
    bump = np.ones(J.shape)
    bump[worst] += 1e-3
    res_bad = check_jacobian(f, x, lambda x: jac(x) * bump)
    assert res_bad.ok == bool(np.abs(J).max() < 1e-6)
    assert res_bad.ok or res_bad.worst == worst


# --- gradients of functions of a pytree (an MLP's params) -------------------------------------------


def tanh_mse_objective(params, X, y, l2):
    """J = 1/(2n) sum_i (yhat_i - y_i)^2 + l2/2 sum ||W||^2 of a tanh MLP, written here, not in lecture6."""
    h = X
    for k, layer in enumerate(params):
        z = h @ layer["W"].T + layer["b"][None, :]
        h = jnp.tanh(z) if k + 1 < len(params) else z
    return 0.5 * jnp.mean((h[:, 0] - y) ** 2) + 0.5 * l2 * sum(jnp.sum(layer["W"] ** 2) for layer in params)


@pytest.fixture(scope="module")
def mlp_problem():
    X = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    r = np.random.default_rng(3)
    params = [{"W": jnp.asarray(r.normal(size=(3, 2))), "b": jnp.asarray(r.normal(size=3))},
              {"W": jnp.asarray(r.normal(size=(1, 3))), "b": jnp.asarray(r.normal(size=1))}]

    def f(p):
        return tanh_mse_objective(p, X, y, 0.1)

    def g(p):
        return backprop.backprop(p, X, y, activation="tanh", loss="mse", l2=0.1)

    return f, g, params


def test_check_gradient_on_a_pytree_passes_for_backprop(mlp_problem):
    f, g, params = mlp_problem
    res = assert_gradient(f, params, g)
    assert res.jacobians["hand"].shape == (1, 13)
    np.testing.assert_allclose(res.jacobians["fd"], res.jacobians["hand"], rtol=1e-6, atol=1e-9)


def test_check_gradient_names_the_wrong_leaf_and_index(mlp_problem):
    f, g, params = mlp_problem

    def wrong(p):
        grads = g(p)
        grads[1]["W"] = grads[1]["W"].at[0, 2].multiply(1.01)  # dJ/dW2[0, 2] off by 1%
        return grads

    res = check_gradient(f, params, wrong)
    assert not res.ok and res.worst == (0, 11)
    with pytest.raises(AssertionError, match=r"df/dparams\[1\]\['W'\]\[0, 2\]"):
        assert_gradient(f, params, wrong)


def test_check_gradient_rejects_wrong_structure_and_non_scalar_f(mlp_problem):
    f, g, params = mlp_problem
    with pytest.raises(ValueError, match="structure and shapes of params"):
        check_gradient(f, params, lambda p: g(p)[::-1])
    with pytest.raises(ValueError, match="scalar f"):
        check_gradient(lambda p: p[0]["b"], params, g)
