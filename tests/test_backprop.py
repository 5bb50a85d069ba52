"""Backprop (Algorithm 6.4) against jax.grad / jax.vjp of an independently written objective."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import backprop as bp
from lecture6 import mlp

#: Hand gradients vs autodiff in float64, relative to the largest entry of the reference. Both are
#: exact derivatives rounded differently (~1e-16 per operation, a few dozen operations deep), so
#: they agree to ~1e-15; 1e-10 leaves ample head-room and still flags any wrong term or factor.
GRAD_RTOL = 1e-10

ACTS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + jnp.exp(-z)),
    "identity": lambda z: z,
    "heaviside": lambda z: jnp.where(z > 0, 1.0, 0.0),
}


def reference_J(params, X, Y, activation, loss, l2):
    """The objective written independently of lecture6: per-example column vectors, z = W h + b."""

    def net(x):
        h = x
        for k, layer in enumerate(params):
            z = layer["W"] @ h + layer["b"]
            h = ACTS[activation](z) if k + 1 < len(params) else z
        return h

    out = jax.vmap(net)(X)
    n = X.shape[0]
    if loss == "mse":
        data = jnp.sum((out - Y) ** 2) / (2 * n)
    else:
        data = -jnp.sum(Y * (out - jax.scipy.special.logsumexp(out, axis=1, keepdims=True))) / n
    reg = sum(jnp.sum(layer["W"] ** 2) for layer in params)
    return data + l2 / 2 * reg


_ref_grad = jax.jit(jax.grad(reference_J), static_argnums=(3, 4))
_backprop = jax.jit(bp.backprop, static_argnames=("activation", "loss", "return_intermediates"))


@jax.jit(static_argnames=("activation", "loss"))
def _both(params, X, Y, l2, *, activation, loss):
    """Hand and autodiff gradients in one compiled program (one compilation per configuration)."""
    return (bp.backprop(params, X, Y, activation=activation, loss=loss, l2=l2),
            jax.grad(reference_J)(params, X, Y, activation, loss, l2))


def assert_tree_close(got, want, rtol=GRAD_RTOL):
    chex.assert_trees_all_equal_shapes(got, want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = max(float(jnp.max(jnp.abs(w))), 1e-300)
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * scale)


def make_problem(seed, *, depth=None, activation=None, loss=None, n=None):
    """A random network and batch: depth 1-4, widths 1-8 (CE needs at least 2 classes).

    Drawn with NumPy: eager jax.random would compile its kernels anew for every shape.
    """
    r = np.random.default_rng(seed)
    depth = depth or 1 + (seed + seed // 2) % 4
    sizes = [int(s) for s in r.integers(1, 9, size=depth + 1)]
    if loss == "softmax_ce":
        sizes[-1] = max(sizes[-1], 2)
    n = n or int(r.integers(1, 7))
    params = [{"W": jnp.asarray(r.normal(scale=0.9, size=(m, d))), "b": jnp.asarray(r.normal(scale=0.1, size=m))}
              for d, m in itertools.pairwise(sizes)]
    X = jnp.asarray(r.normal(size=(n, sizes[0])))
    if loss == "mse":
        Y = jnp.asarray(r.normal(size=(n, sizes[-1])))
    else:
        Y = jnp.asarray(np.eye(sizes[-1])[r.integers(0, sizes[-1], size=n)])
    return params, X, Y


# A fixed set of random configurations: every activation meets both losses, with and without L2,
# and depth and widths are drawn per configuration (the seed fixes them).
CONFIGS = [(seed, a, lo, 0.25 * ((seed // 2) % 2))
           for seed, (a, lo) in enumerate((a, lo) for a in ACTS for lo in ("mse", "softmax_ce"))]


@pytest.mark.parametrize(("seed", "activation", "loss", "l2"), CONFIGS)
def test_backprop_matches_autodiff(seed, activation, loss, l2):
    params, X, Y = make_problem(seed, activation=activation, loss=loss)
    got, want = _both(params, X, Y, l2, activation=activation, loss=loss)
    assert_tree_close(got, want)


def test_configs_cover_every_activation_loss_and_l2():
    covered = {(a, lo) for _, a, lo, _ in CONFIGS}
    assert covered == {(a, lo) for a in ACTS for lo in ("mse", "softmax_ce")}
    assert {(lo, l2) for _, _, lo, l2 in CONFIGS} == {(lo, l2) for lo in ("mse", "softmax_ce")
                                                      for l2 in (0.0, 0.25)}
    depths = {len(make_problem(s, loss=lo)[0]) for s, _, lo, _ in CONFIGS}
    assert depths == {1, 2, 3, 4}


@pytest.mark.parametrize(("seed", "activation", "loss"), [(11, "tanh", "mse"), (12, "relu", "softmax_ce")])
def test_intermediate_gradients_match_vjp(seed, activation, loss):
    params, X, Y = make_problem(seed, depth=3, activation=activation, loss=loss, n=4)
    l2 = 0.1
    grads, inter = _backprop(params, X, Y, activation=activation, loss=loss, l2=l2, return_intermediates=True)

    def J_of(eps_a, eps_h):
        # J as a function of additive perturbations of every z^(k) (= a^(k)) and every h^(k).
        h = X + eps_h[0]
        for k, layer in enumerate(params):
            z = h @ layer["W"].T + layer["b"][None, :] + eps_a[k]
            h = ACTS[activation](z) + eps_h[k + 1] if k + 1 < len(params) else z
        n = X.shape[0]
        data = (jnp.sum((h - Y) ** 2) / (2 * n) if loss == "mse"
                else -jnp.sum(Y * jax.nn.log_softmax(h, axis=1)) / n)
        return data + l2 / 2 * sum(jnp.sum(p["W"] ** 2) for p in params), h

    eps_a = [jnp.zeros_like(z) for z in mlp.forward(params, X, activation=activation)[1]["z"]]
    eps_h = [jnp.zeros_like(h) for h in mlp.forward(params, X, activation=activation)[1]["h"]]
    (J, out), vjp = jax.vjp(J_of, eps_a, eps_h)
    ga, gh = vjp((jnp.ones_like(J), jnp.zeros_like(out)))
    assert_tree_close(inter["grad_a"], ga)
    assert_tree_close(inter["grad_h"], gh)
    np.testing.assert_allclose(inter["loss"], J, rtol=1e-13)
    # grad_yhat J is grad_{a^(l)} J: the output layer is linear.
    np.testing.assert_allclose(inter["grad_yhat"], ga[-1], rtol=1e-13)
    # grad_b^(k) J is the row sum of grad_a^(k) J (Algorithm 6.4's grad_b = g, summed over examples).
    for layer, g in zip(grads, ga):
        np.testing.assert_allclose(layer["b"], jnp.sum(g, axis=0), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("seed", "depth", "activation", "loss"), [(21, 1, "relu", "mse"), (23, 2, "sigmoid", "softmax_ce")])
def test_jacobian_chain_route_matches_backprop_and_autodiff(seed, depth, activation, loss):
    params, X, Y = make_problem(seed, depth=depth, activation=activation, loss=loss, n=3)
    chained = bp.jacobian_chain_grads(params, X, Y, activation=activation, loss=loss, l2=0.2)
    assert_tree_close(chained, _backprop(params, X, Y, activation=activation, loss=loss, l2=0.2))
    assert_tree_close(chained, _ref_grad(params, X, Y, activation, loss, 0.2))


def test_linear_jacobians_against_autodiff(rng):
    W, H = jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(2, 4)))
    b = jnp.asarray(rng.normal(size=3))
    dZ_dH, dZ_dW, dZ_db = bp.linear_jacobians(W, H)
    Z = lambda W_, H_, b_: H_ @ W_.T + b_[None, :]
    np.testing.assert_allclose(dZ_dH, jax.jacfwd(Z, 1)(W, H, b).reshape(6, 8), rtol=1e-15)
    np.testing.assert_allclose(dZ_dW, jax.jacfwd(Z, 0)(W, H, b).reshape(6, 12), rtol=1e-15)
    np.testing.assert_allclose(dZ_db, jax.jacfwd(Z, 2)(W, H, b).reshape(6, 3), rtol=1e-15)


def test_softmax_ce_closed_forms_match_autodiff():
    params, X, Y = make_problem(31, depth=2, loss="softmax_ce", n=5)
    hand = bp.softmax_ce_3layer_grads(params, X, Y)
    assert_tree_close(hand, _ref_grad(params, X, Y, "relu", "softmax_ce", 0.0))
    with pytest.raises(ValueError, match="3-layer"):
        bp.softmax_ce_3layer_grads(make_problem(32, depth=3, loss="softmax_ce")[0], X, Y)


def test_slide_erratum_g_needs_the_transpose(rng):
    # The slide prints g^T = ((yhat - y) W^(2)) (.) relu'(z^(1)T). With yhat - y the K x 1 column of
    # K >= 2 classes, (K x 1)(K x m) is undefined; the correct row is (yhat - y)^T W^(2).
    K, m = 3, 4
    W2 = rng.normal(size=(K, m))
    e = rng.normal(size=(K, 1))
    with pytest.raises(ValueError):
        e @ W2
    assert (e.T @ W2).shape == (1, m)


def test_l2_regularizes_weights_not_biases():
    params, X, Y = make_problem(41, depth=2, loss="mse", n=4)
    g0 = bp.backprop(params, X, Y, activation="tanh", loss="mse", l2=0.0)
    g1 = bp.backprop(params, X, Y, activation="tanh", loss="mse", l2=0.5)
    for a, b, p in zip(g0, g1, params):
        np.testing.assert_allclose(b["W"] - a["W"], 0.5 * p["W"], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(b["b"], a["b"])


def test_heaviside_network_gets_no_gradient_below_the_output():
    params, X, Y = make_problem(42, depth=3, loss="mse", n=4)
    grads = bp.backprop(params, X, Y, activation="heaviside", loss="mse")
    assert all(float(jnp.max(jnp.abs(leaf))) == 0.0 for layer in grads[:-1] for leaf in layer.values())
    assert float(jnp.max(jnp.abs(grads[-1]["b"]))) > 0


def test_single_example_and_scalar_targets(key):
    params = mlp.init_mlp(key, [2, 3, 1])
    X = jnp.array([[0.0, 1.0], [1.0, 1.0], [0.5, -1.0]])
    y = jnp.array([1.0, 0.0, 2.0])
    g_vec = bp.backprop(params, X, y, activation="relu", loss="mse")
    assert_tree_close(g_vec, bp.backprop(params, X, y[:, None], activation="relu", loss="mse"))
    g_one = bp.backprop(params, X[0], y[:1], activation="relu", loss="mse")
    assert_tree_close(g_one, bp.backprop(params, X[:1], y[:1], activation="relu", loss="mse"))
    J, g = bp.value_and_backprop(params, X, y, activation="relu", loss="mse", l2=0.1)
    np.testing.assert_allclose(J, bp.objective(params, X, y, activation="relu", loss="mse", l2=0.1), rtol=1e-14)
    assert_tree_close(g, bp.backprop(params, X, y, activation="relu", loss="mse", l2=0.1))


def test_jit_vmap_over_seeds_without_retracing(rng):
    X = jnp.asarray(rng.normal(size=(8, 3)))
    Y = jnp.asarray(rng.normal(size=(8, 2)))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def grads_for(params, l2):
        return bp.backprop(params, X, Y, activation="tanh", loss="mse", l2=l2)

    stacked = jax.vmap(lambda k: mlp.init_mlp(k, [3, 4, 2]))(jax.random.split(jax.random.key(0), 5))
    batched = jax.jit(jax.vmap(grads_for, in_axes=(0, None)))
    out = batched(stacked, 0.1)
    batched(stacked, 0.3)  # a new l2 value is data, not a new trace
    first = bp.backprop(jax.tree.map(lambda a: a[0], stacked), X, Y, activation="tanh", loss="mse", l2=0.1)
    assert_tree_close(jax.tree.map(lambda a: a[0], out), first)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"l2": -0.1}, "l2 must be >= 0, got -0.1"),
    ({"loss": "hinge"}, "'hinge'"),
    ({"activation": "swish"}, "'swish'"),
])
def test_bad_arguments_are_named(key, kwargs, match):
    params = mlp.init_mlp(key, [2, 2])
    args = {"activation": "relu", "loss": "mse"} | kwargs
    with pytest.raises(ValueError, match=match):
        bp.backprop(params, jnp.ones((3, 2)), jnp.ones((3, 2)), **args)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        bp.backprop(params, jnp.ones((3, 2)), jnp.ones((3, 5)), activation="relu", loss="mse")
