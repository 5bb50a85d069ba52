"""Backprop (Algorithm 6.4) against jax.grad / jax.vjp of an objective written independently here.

Speed: every (activation, loss) pair is one branch of a ``lax.switch`` inside one jitted function, so a
network shape costs one compilation whatever the pair, and shapes come from the small set ``SHAPES``.
"""

import functools
import itertools

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lecture6 import backprop as bp
from lecture6 import chain_rule
from lecture6.gradcheck import COMPILER_OPTIONS

#: Hand gradients vs autodiff in float64, relative to the largest entry of the reference. Both are
#: exact derivatives rounded differently (~1e-16 per operation, a few dozen operations deep), so
#: they agree to ~1e-15; 1e-10 leaves ample head-room and still flags any wrong term or factor.
GRAD_RTOL = 1e-10

ACTS = {  # written here, not taken from lecture6.activations
    "relu": lambda z: jnp.where(z > 0, z, 0.0),
    "tanh": jnp.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + jnp.exp(-z)),
    "identity": lambda z: z,
    "heaviside": lambda z: jnp.where(z > 0, 1.0, 0.0),
}
LOSSES = ("mse", "softmax_ce")
PAIRS = list(itertools.product(ACTS, LOSSES))

#: (layer widths, n examples): a linear model, a 3-layer network (the slides'), a deep one with a
#: width-1 bottleneck. Outputs have >= 2 units so that both losses fit every shape.
SHAPES = [((4, 2), 3), ((2, 3, 2), 4), ((3, 1, 4, 2), 5)]


def reference_J(params, X, Y, activation, loss, l2):
    """The objective written independently of lecture6: per-example column vectors, z = W h + b.

    ``activation`` and ``loss`` are names, or one-hot weights over ACTS and LOSSES: as data, one
    compiled program serves every pair (0 times an unused branch adds exact zeros).
    """
    if isinstance(activation, str):
        sigma = ACTS[activation]
    else:
        def sigma(z):
            return sum(w * s(z) for w, s in zip(activation, ACTS.values()))

    def net(x):
        h = x
        for k, layer in enumerate(params):
            z = layer["W"] @ h + layer["b"]
            h = sigma(z) if k + 1 < len(params) else z
        return h

    out = jax.vmap(net)(X)
    if isinstance(loss, str):
        data = reference_loss(out, Y, loss)
    else:
        data = sum(w * reference_loss(out, Y, name) for w, name in zip(loss, LOSSES))
    return data + l2 / 2 * sum(jnp.sum(layer["W"] ** 2) for layer in params)


def reference_loss(out, Y, loss):
    """f_MSE = 1/(2n) sum ||out - y||^2, or f_CE = -1/n sum y log softmax(out) with the max subtracted by hand."""
    n = out.shape[0]
    if loss == "mse":
        return jnp.sum((out - Y) ** 2) / (2 * n)
    m = jax.lax.stop_gradient(jnp.max(out, axis=1, keepdims=True))
    return -jnp.sum(Y * (out - m - jnp.log(jnp.sum(jnp.exp(out - m), axis=1, keepdims=True)))) / n


def _pair_program(fn=None, *, pairs=PAIRS):
    """``fn(activation, loss, *args)`` as one jitted ``g(i, *args)`` for the i-th of ``pairs``."""
    if fn is None:
        return functools.partial(_pair_program, pairs=pairs)
    return jax.jit(lambda i, *args: jax.lax.switch(i, [functools.partial(fn, a, lo) for a, lo in pairs], *args),
                   compiler_options=COMPILER_OPTIONS)


def _backprop_positional(activation, loss, params, X, Y, l2):
    return bp.backprop(params, X, Y, activation=activation, loss=loss, l2=l2)


@functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
def hand_and_autodiff(i, params, X, Y, l2):
    """backprop for the i-th pair of PAIRS (one lax.switch branch per pair), and jax.grad of reference_J."""
    hand = jax.lax.switch(i, [functools.partial(_backprop_positional, a, lo) for a, lo in PAIRS], params, X, Y, l2)
    pick_act, pick_loss = jax.nn.one_hot(i // len(LOSSES), len(ACTS)), jax.nn.one_hot(i % len(LOSSES), len(LOSSES))
    return hand, jax.grad(reference_J)(params, X, Y, pick_act, pick_loss, l2)


def assert_tree_close(got, want, rtol=GRAD_RTOL):
    chex.assert_trees_all_equal_shapes(got, want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        w = np.asarray(w)
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * max(np.max(np.abs(w)), 1e-300))


def make_problem(seed, sizes, n):
    """Random params and a batch; targets for both losses: real ``(n, K)`` and one-hot ``(n, K)``.

    NumPy arrays: eager jax.random or jnp.asarray would compile a program for every new shape.
    """
    r = np.random.default_rng(seed)
    params = [{"W": r.normal(scale=0.9, size=(m, d)), "b": r.normal(scale=0.1, size=m)}
              for d, m in itertools.pairwise(sizes)]
    X = r.normal(size=(n, sizes[0]))
    Y = {"mse": r.normal(size=(n, sizes[-1])), "softmax_ce": np.eye(sizes[-1])[r.integers(0, sizes[-1], size=n)]}
    return params, X, Y


@settings(max_examples=10, deadline=None)
@given(shape=st.sampled_from(SHAPES), l2=st.sampled_from([0.0]) | st.floats(0.01, 3.0),
       seed=st.integers(0, 2**32 - 1))
def test_backprop_matches_autodiff_for_every_activation_and_loss(shape, l2, seed):
    params, X, Y = make_problem(seed, *shape)
    for i, (_, loss) in enumerate(PAIRS):
        got, want = hand_and_autodiff(i, params, X, Y[loss], l2)
        assert_tree_close(got, want)


@_pair_program
def intermediates_and_vjp(activation, loss, params, X, Y, l2):
    """backprop's intermediate gradients, and the same by jax.vjp of J with respect to perturbations
    added to every a^(k) (= z^(k)) and every h^(k)."""
    _, inter = bp.backprop(params, X, Y, activation=activation, loss=loss, l2=l2, return_intermediates=True)

    def J_of(eps_a, eps_h):
        h = X + eps_h[0]
        for k, layer in enumerate(params):
            z = h @ layer["W"].T + layer["b"][None, :] + eps_a[k]
            h = ACTS[activation](z) + eps_h[k + 1] if k + 1 < len(params) else z
        return reference_loss(h, Y, loss) + l2 / 2 * sum(jnp.sum(p["W"] ** 2) for p in params)

    n = X.shape[0]
    eps_a = [jnp.zeros((n, layer["W"].shape[0])) for layer in params]
    eps_h = [jnp.zeros((n, layer["W"].shape[1])) for layer in params]
    J, vjp = jax.vjp(J_of, eps_a, eps_h)
    return inter, J, *vjp(jnp.ones_like(J))


def test_intermediate_gradients_match_vjp():
    params, X, Y = make_problem(11, *SHAPES[1])
    l2 = 0.1
    for i, (_, loss) in enumerate(PAIRS):
        inter, J, ga, gh = intermediates_and_vjp(i, params, X, Y[loss], l2)
        assert_tree_close(inter["grad_a"], ga)
        assert_tree_close(inter["grad_h"], gh)
        np.testing.assert_allclose(inter["loss"], J, rtol=1e-13)
        # grad_yhat J is grad_{a^(l)} J: the output layer is linear.
        np.testing.assert_allclose(inter["grad_yhat"], ga[-1], rtol=1e-13)
    # grad_b^(k) J is the row sum of grad_a^(k) J (Algorithm 6.4's grad_b = g, summed over examples).
    grads, _ = hand_and_autodiff(0, params, X, Y["mse"], l2)
    inter, _, ga, _ = intermediates_and_vjp(0, params, X, Y["mse"], l2)
    for layer, g in zip(grads, ga):
        np.testing.assert_allclose(layer["b"], np.sum(g, axis=0), rtol=1e-12, atol=1e-15)


#: every activation once, the losses alternating: the chain route is slow to compile (explicit Jacobians)
CHAIN_PAIRS = [(a, LOSSES[k % 2]) for k, a in enumerate(ACTS)]


@_pair_program(pairs=CHAIN_PAIRS)
def chain_route(activation, loss, params, X, Y, l2):
    return bp.jacobian_chain_grads(params, X, Y, activation=activation, loss=loss, l2=l2)


def test_jacobian_chain_route_matches_backprop_and_autodiff():
    params, X, Y = make_problem(21, *SHAPES[1])
    for i, pair in enumerate(CHAIN_PAIRS):
        hand, auto = hand_and_autodiff(PAIRS.index(pair), params, X, Y[pair[1]], 0.2)
        chained = chain_route(i, params, X, Y[pair[1]], 0.2)
        assert_tree_close(chained, hand)
        assert_tree_close(chained, auto)


def test_linear_jacobians_against_autodiff(rng):
    W, H, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), rng.normal(size=3)

    @jax.jit
    def both(W, H, b):
        def Z(W_, H_, b_):
            return H_ @ W_.T + b_[None, :]

        auto = [jax.jacfwd(Z, k)(W, H, b).reshape(6, -1) for k in (1, 0, 2)]
        return bp.linear_jacobians(W, H), auto

    hand, auto = both(W, H, b)
    for h, a in zip(hand, auto):
        np.testing.assert_allclose(h, a, rtol=1e-15)


def test_softmax_ce_closed_forms_match_autodiff():
    params, X, Y = make_problem(31, *SHAPES[1])  # a 3-layer network, as on the slide
    hand = jax.jit(bp.softmax_ce_3layer_grads, compiler_options=COMPILER_OPTIONS)(params, X, Y["softmax_ce"])
    _, auto = hand_and_autodiff(PAIRS.index(("relu", "softmax_ce")), params, X, Y["softmax_ce"], 0.0)
    assert_tree_close(hand, auto)
    with pytest.raises(ValueError, match="3-layer"):
        bp.softmax_ce_3layer_grads(make_problem(32, *SHAPES[2])[0], X, Y["softmax_ce"])


def test_slide_erratum_g_needs_the_transpose(rng):
    # The slide prints g^T = ((yhat - y) W^(2)) (.) relu'(z^(1)T). With yhat - y the K x 1 column of
    # K >= 2 classes, (K x 1)(K x m) is undefined: lecture6's chain rule refuses it, naming the mismatch; the
    # correct row is (yhat - y)^T W^(2) (softmax_ce_3layer_grads against autodiff: the test above).
    K, m = 3, 4
    W2 = rng.normal(size=(K, m))
    e = rng.normal(size=(K, 1))
    with pytest.raises(ValueError, match="Jacobian 1 has 3 rows but Jacobian 0 has 1 columns"):
        chain_rule.chain(e, W2)
    np.testing.assert_allclose(chain_rule.chain(e.T, W2), e.T @ W2, rtol=1e-14)


def test_l2_regularizes_weights_not_biases():
    params, X, Y = make_problem(41, *SHAPES[1])
    i = PAIRS.index(("tanh", "mse"))
    g0, _ = hand_and_autodiff(i, params, X, Y["mse"], 0.0)
    g1, _ = hand_and_autodiff(i, params, X, Y["mse"], 0.5)
    for a, b, p in zip(g0, g1, params):
        np.testing.assert_allclose(b["W"] - a["W"], 0.5 * p["W"], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(b["b"], a["b"])


def test_heaviside_network_gets_no_gradient_below_the_output():
    params, X, Y = make_problem(42, *SHAPES[2])
    grads, _ = hand_and_autodiff(PAIRS.index(("heaviside", "mse")), params, X, Y["mse"], 0.0)
    grads = jax.tree.map(np.asarray, grads)  # on the host: eager jnp reductions compile per shape
    assert all(float(np.max(np.abs(leaf))) == 0.0 for layer in grads[:-1] for leaf in layer.values())
    assert float(np.max(np.abs(grads[-1]["b"]))) > 0


def test_single_example_and_scalar_targets():
    params, X, _ = make_problem(43, (2, 3, 1), 3)
    y = np.array([1.0, 0.0, 2.0])

    @functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
    def routes(params, X, y):
        kw = {"activation": "relu", "loss": "mse"}
        return {
            "(n,) targets": bp.backprop(params, X, y, **kw),
            "(n, 1) targets": bp.backprop(params, X, y[:, None], **kw),
            "autodiff": jax.grad(reference_J)(params, X, y[:, None], "relu", "mse", 0.0),
            "one example": bp.backprop(params, X[0], y[:1], **kw),
            "a batch of one": bp.backprop(params, X[:1], y[:1], **kw),
            "value_and_backprop": bp.value_and_backprop(params, X, y, l2=0.1, **kw),
            "backprop with l2": bp.backprop(params, X, y, l2=0.1, **kw),
            "J with l2": reference_J(params, X, y[:, None], "relu", "mse", 0.1),
        }

    r = routes(params, X, y)
    assert_tree_close(r["(n,) targets"], r["autodiff"])
    assert_tree_close(r["(n, 1) targets"], r["autodiff"])
    assert_tree_close(r["one example"], r["a batch of one"])
    J, g = r["value_and_backprop"]
    np.testing.assert_allclose(J, r["J with l2"], rtol=1e-14)
    assert_tree_close(g, r["backprop with l2"])


def test_jit_vmap_over_seeds_without_retracing():
    sizes, n = SHAPES[1]
    _, X, Y = make_problem(44, sizes, n)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def grads_for(params, l2):
        return bp.backprop(params, X, Y["mse"], activation="tanh", loss="mse", l2=l2)

    seeds = [make_problem(s, sizes, n)[0] for s in range(5)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *seeds)
    batched = jax.jit(jax.vmap(grads_for, in_axes=(0, None)))
    out = jax.tree.map(np.asarray, batched(stacked, 0.1))
    batched(stacked, 0.3)  # a new l2 value is data, not a new trace
    i = PAIRS.index(("tanh", "mse"))
    for s in (0, 4):
        _, auto = hand_and_autodiff(i, seeds[s], X, Y["mse"], 0.1)
        assert_tree_close(jax.tree.map(lambda a, s=s: a[s], out), auto)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"l2": -0.1}, "l2 must be >= 0, got -0.1"),
    ({"loss": "hinge"}, "'hinge'"),
    ({"activation": "swish"}, "'swish'"),
])
def test_bad_arguments_are_named(kwargs, match):
    params = make_problem(45, (2, 2), 3)[0]
    args = {"activation": "relu", "loss": "mse"} | kwargs
    with pytest.raises(ValueError, match=match):
        bp.backprop(params, np.ones((3, 2)), np.ones((3, 2)), **args)
    with pytest.raises(ValueError, match=r"\(3, 5\)"):
        bp.backprop(params, np.ones((3, 2)), np.ones((3, 5)), activation="relu", loss="mse")
