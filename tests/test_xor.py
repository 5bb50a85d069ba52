"""The XOR facts of the lecture and the nine hand partials of the 2-2-1 network."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import backprop as bp
from lecture6 import mlp, xor
from lecture6.data import xor as xor_data

#: Hand partials vs autodiff: both exact, a handful of float64 operations apart.
GRAD_RTOL = 1e-12


def test_hidden_points_positive_points_collapse_not_negative():
    X, y = xor_data()
    H = xor.hidden_points(X=X)
    # By hand: z = W1 x + b1 = (2x1 + 2x2 - 1, x1 + x2 - 1); h = relu(z).
    np.testing.assert_array_equal(H, [[0, 0], [1, 0], [1, 0], [3, 1]])
    positives, negatives = H[y == 1], H[y == 0]
    assert np.array_equal(positives[0], positives[1])  # (0,1) and (1,0) -> (1, 0)
    assert not np.array_equal(negatives[0], negatives[1])  # the slide's claim is the other way round


def test_hidden_points_are_separated_and_readout_is_exact():
    X, y = xor_data()
    W2, b2, resid = xor.solve_output_layer(xor.hidden_points(), y)
    assert resid < 1e-12
    np.testing.assert_allclose(W2, [[1.0, -3.0]], atol=1e-12)
    np.testing.assert_allclose(b2, [0.0], atol=1e-12)
    params = xor.slide_solution()
    np.testing.assert_array_equal(mlp.predict(params, X, activation="relu")[:, 0], y)
    # Without the ReLU the same weights cannot fit XOR: the network is one affine map.
    lin = mlp.predict(params, X, activation="identity")[:, 0]
    assert np.max(np.abs(lin - y)) > 0.4


def test_no_affine_model_beats_the_constant_half():
    X, y = xor_data()
    w, b, f = xor.best_affine_fit(X, y)
    np.testing.assert_allclose(w, [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(b, 0.5, rtol=1e-12)
    np.testing.assert_allclose(f, 0.125, rtol=1e-12)
    # Independent reference: scikit-learn's least squares.
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression().fit(X, y)
    r = reg.predict(X) - y
    np.testing.assert_allclose(np.sum(r**2) / 8, 0.125, rtol=1e-12)
    # and a deep linear network, whatever its weights, is one affine map, so it cannot do better.
    for seed in range(3):
        params = mlp.init_mlp(jax.random.key(seed), [2, 4, 3, 1], init="normal")
        W, c = mlp.collapse_linear(params)
        yhat = mlp.predict(params, X, activation="identity")[:, 0]
        np.testing.assert_allclose(yhat, X @ np.asarray(W)[0] + float(c[0]), rtol=1e-12, atol=1e-13)
        assert np.sum((yhat - y) ** 2) / 8 >= 0.125 - 1e-12


def test_named_parameters_round_trip_and_w2_is_a_row(rng):
    named = dict(zip(xor.NAMES, rng.normal(size=9)))
    params = xor.to_params(named)
    assert params[1]["W"].shape == (1, 2)  # the row [w5 w6]: the slide's column [w5; w6] cannot multiply h
    X, _ = xor_data()
    column = [params[0], {"W": params[1]["W"].T, "b": params[1]["b"]}]  # the slide's W^(2) = [w5; w6]
    with pytest.raises(ValueError, match=r"layer 2: W must be \(n_out, n_in\).*got W \(2, 1\)"):
        mlp.predict(column, X)
    back = xor.from_params(params)
    assert all(float(back[k]) == named[k] for k in xor.NAMES)
    np.testing.assert_allclose(mlp.predict(params, X)[:, 0], xor.g(named, X), rtol=1e-14)
    with pytest.raises(ValueError, match="w6"):
        xor.to_params({k: v for k, v in named.items() if k != "w6"})


def _g_independent(p, x):
    r = jax.nn.relu
    return p["w5"] * r(p["w1"] * x[0] + p["w2"] * x[1] + p["b1"]) + p["w6"] * r(
        p["w3"] * x[0] + p["w4"] * x[1] + p["b2"]) + p["b3"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nine_partials_match_autodiff(seed):
    r = np.random.default_rng(seed)
    named = {k: jnp.asarray(v) for k, v in zip(xor.NAMES, r.normal(size=9))}
    X = np.concatenate([xor_data()[0], r.normal(size=(3, 2))])
    hand = xor.partials(named, X)
    auto = jax.vmap(jax.grad(_g_independent), in_axes=(None, 0))(named, jnp.asarray(X))
    for k in xor.NAMES:
        np.testing.assert_allclose(hand[k], auto[k], rtol=GRAD_RTOL, atol=1e-15, err_msg=k)


def test_partials_at_the_slide_solution_follow_the_relu_convention():
    # At the hand solution z2 = x1 + x2 - 1 is exactly 0 for (0,1) and (1,0): relu'(0) = 0 there.
    named = xor.from_params(xor.slide_solution())
    X, _ = xor_data()
    d = xor.partials(named, X)
    np.testing.assert_array_equal(d["b2"], [0.0, 0.0, 0.0, float(named["w6"])])
    np.testing.assert_array_equal(d["w1"], [0.0, 0.0, float(named["w5"]), float(named["w5"])])
    auto = jax.vmap(jax.grad(_g_independent), in_axes=(None, 0))(named, jnp.asarray(X))
    for k in xor.NAMES:
        np.testing.assert_array_equal(d[k], auto[k], err_msg=k)


def test_mse_partials_match_autodiff_backprop_and_finite_differences():
    r = np.random.default_rng(7)
    named = {k: jnp.asarray(v) for k, v in zip(xor.NAMES, r.normal(size=9))}
    X, y = xor_data()
    hand = xor.mse_partials(named, X, y)

    def f(p):
        return sum((_g_independent(p, X[i]) - y[i]) ** 2 for i in range(4)) / 8

    auto = jax.grad(f)(named)
    via_bp = xor.from_params(bp.backprop(xor.to_params(named), X, y, activation="relu", loss="mse"))
    for k in xor.NAMES:
        np.testing.assert_allclose(hand[k], auto[k], rtol=GRAD_RTOL, atol=1e-15, err_msg=k)
        np.testing.assert_allclose(hand[k], via_bp[k], rtol=GRAD_RTOL, atol=1e-15, err_msg=k)
        # Central difference, step 1e-6: accurate to ~1e-9 away from the kinks (z is far from 0 here).
        e = 1e-6
        fd = (f(named | {k: named[k] + e}) - f(named | {k: named[k] - e})) / (2 * e)
        np.testing.assert_allclose(hand[k], fd, rtol=1e-6, atol=1e-8, err_msg=k)


def test_xor_points_are_all_four_binary_inputs():
    X, y = xor_data()
    assert sorted(map(tuple, X.tolist())) == list(itertools.product([0.0, 1.0], repeat=2))
    np.testing.assert_array_equal(y, (X[:, 0] != X[:, 1]).astype(float))
