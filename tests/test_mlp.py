"""The MLP: initialization, forward propagation with its cache, and the collapse of linear networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import mlp

# One architecture for the init, forward and error tests, where its size is not the point: init_mlp
# compiles one program per architecture (and dtype), shared by these tests whatever their bias_init.
SIZES = [3, 5, 4, 3]


def _numpy_forward(params, x, sigma):
    """An example-by-example reference written from the slide: z = W h + b, h = sigma(z)."""
    h = np.asarray(x, dtype=np.float64)
    zs, hs = [], [h]
    for k, layer in enumerate(params):
        z = np.asarray(layer["W"]) @ h + np.asarray(layer["b"])
        zs.append(z)
        if k < len(params) - 1:
            h = sigma(z)
            hs.append(h)
    return z, zs, hs


def _normal_params(rng, sizes, scale, bias):
    """Params drawn with NumPy (W ~ N(0, scale^2), b = bias) for the tests of the linear collapse, where
    the draw is not what is checked: init_mlp compiles one program per architecture, these need none."""
    return [{"W": jax.device_put(scale * rng.standard_normal((n_out, n_in))), "b": jax.device_put(np.full(n_out, bias))}
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def test_init_shapes_dtype_and_determinism(key):
    params = mlp.init_mlp(key, SIZES)
    assert [(p["W"].shape, p["b"].shape) for p in params] == [((5, 3), (5,)), ((4, 5), (4,)), ((3, 4), (3,))]
    assert all(p["W"].dtype == jnp.float64 for p in params)
    assert all(np.array_equal(p["b"], np.zeros(p["b"].shape)) for p in params)
    again = mlp.init_mlp(key, SIZES)
    assert all(np.array_equal(a["W"], b["W"]) for a, b in zip(params, again))
    p32 = mlp.init_mlp(key, [2, 2], dtype=jnp.float32, bias_init=0.5)
    assert p32[0]["W"].dtype == jnp.float32
    np.testing.assert_array_equal(p32[0]["b"], [0.5, 0.5])


@pytest.mark.parametrize(("init", "scale", "std"), [
    ("he", 1.0, np.sqrt(2.0 / 400)),
    ("glorot", 1.0, np.sqrt(2.0 / (400 + 300))),
    ("normal", 0.1, 0.1),
    ("he", 0.5, 0.5 * np.sqrt(2.0 / 400)),
])
def test_init_statistics(key, init, scale, std):
    """Mean and standard deviation of 120,000 draws within 5 standard errors of N(0, std^2)."""
    W = np.asarray(mlp.init_mlp(key, [400, 300], init=init, scale=scale)[0]["W"])
    n = W.size
    assert abs(W.mean()) < 5 * std / np.sqrt(n)
    assert abs(W.std() - std) < 5 * std / np.sqrt(2 * n)  # the standard error of a sample std
    # the seed-batched draw of the training code (the init_std formula) has the same distribution
    from lecture6.train import init_seeds

    V = np.asarray(init_seeds(key, (400, 300), 1, init=init, scale=scale, dtype=jnp.float64)[0]["W"])
    assert abs(V.std() - std) < 5 * std / np.sqrt(2 * n)
    assert abs(V.std() - W.std()) < 5 * std / np.sqrt(n)  # two independent samples of the same std


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sizes": [3]}, "at least an input and an output"),
    ({"sizes": [3, 0]}, "positive integers"),
    ({"sizes": [3, 2.5]}, "positive integers"),
    ({"sizes": [3, 2], "init": "xavier"}, "'xavier'"),
    ({"sizes": [3, 2], "scale": -1.0}, "-1.0"),
    ({"sizes": [3, 2], "dtype": jnp.int32}, "int32"),
])
def test_init_rejects_bad_arguments(key, kwargs, match):
    sizes = kwargs.pop("sizes")
    with pytest.raises(ValueError, match=match):
        mlp.init_mlp(key, sizes, **kwargs)


@pytest.mark.parametrize(("activation", "sigma"), [("tanh", np.tanh), ("relu", lambda z: np.maximum(z, 0))])
def test_forward_matches_example_by_example_reference(key, rng, activation, sigma):
    params = mlp.init_mlp(key, SIZES, bias_init=0.1)
    np.testing.assert_array_equal(params[1]["b"], [0.1] * 4)
    X = rng.normal(size=(6, 3))
    yhat, cache = jax.tree.map(np.asarray, mlp.forward(params, X, activation=activation))  # read on the host
    assert yhat.shape == (6, 3)
    assert [z.shape for z in cache["z"]] == [(6, 5), (6, 4), (6, 3)]
    assert [h.shape for h in cache["h"]] == [(6, 3), (6, 5), (6, 4)]
    for i in range(X.shape[0]):
        y_ref, zs, hs = _numpy_forward(params, X[i], sigma)
        np.testing.assert_allclose(yhat[i], y_ref, rtol=1e-13, atol=1e-14)
        for k in range(3):
            np.testing.assert_allclose(cache["z"][k][i], zs[k], rtol=1e-13, atol=1e-14)
            np.testing.assert_allclose(cache["h"][k][i], hs[k], rtol=1e-13, atol=1e-14)
    # One example (d,) gives the same numbers, without the batch axis.
    y1, c1 = mlp.forward(params, X[4], activation=activation)
    assert y1.shape == (3,) and c1["z"][0].shape == (5,) and c1["h"][0].shape == (3,)
    np.testing.assert_allclose(y1, yhat[4], rtol=1e-14)
    np.testing.assert_array_equal(mlp.predict(params, X, activation=activation), yhat)


def test_softmax_output_is_a_distribution(key, rng):
    params = mlp.init_mlp(key, SIZES)
    p = mlp.predict(params, rng.normal(size=(6, 3)), output="softmax")
    assert p.shape == (6, 3)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_collapse_linear_equals_identity_network(rng, depth):
    sizes = [3] + list(rng.integers(1, 6, size=depth - 1)) + [2]
    params = _normal_params(rng, sizes, 0.8, 0.2)
    W, b = mlp.collapse_linear(params)
    assert W.shape == (2, 3) and b.shape == (2,)
    X = rng.normal(size=(5, 3))
    np.testing.assert_allclose(mlp.predict(params, X, activation="identity"), X @ np.asarray(W).T + np.asarray(b),
                               rtol=1e-12, atol=1e-13)


def test_collapse_linear_two_layers_is_the_slide_formula(rng):
    params = _normal_params(rng, [3, 4, 2], 1.0, 0.3)
    (W1, b1), (W2, b2) = ((p["W"], p["b"]) for p in params)
    W, b = mlp.collapse_linear(params)
    np.testing.assert_allclose(W, W2 @ W1, rtol=1e-14)
    np.testing.assert_allclose(b, W2 @ b1 + b2, rtol=1e-14)


def test_forward_rejects_bad_inputs(key):
    params = mlp.init_mlp(key, SIZES)
    with pytest.raises(ValueError, match=r"d = 3.*\(5, 4\)"):
        mlp.forward(params, jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="'swish'"):
        mlp.forward(params, jnp.ones((5, 3)), activation="swish")
    with pytest.raises(ValueError, match="'logits'"):
        mlp.forward(params, jnp.ones((5, 3)), output="logits")
    bad = [params[0], {"W": params[1]["W"][:, :3], "b": params[1]["b"]}]
    with pytest.raises(ValueError, match="layer 2"):
        mlp.forward(bad, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="'W' and 'b'"):
        mlp.forward([{"W": params[0]["W"]}], jnp.ones((5, 3)))


def test_forward_is_jittable_and_vmappable_over_seeds(rng):
    X = jnp.asarray(rng.normal(size=(4, 2)))
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = jax.vmap(lambda k: mlp.init_mlp(k, [2, 3, 1]))(keys)
    out = jax.jit(jax.vmap(lambda p: mlp.predict(p, X)))(stacked)
    assert out.shape == (3, 4, 1)
    first = mlp.predict(jax.tree.map(lambda a: a[0], stacked), X)
    np.testing.assert_allclose(out[0], first, rtol=1e-14)
