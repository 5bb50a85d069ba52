"""Tests of training (lecture6.train, lecture6.runs, lecture6.train_seeds_last): the loop against the
slide's update written out independently, the two layouts, the two gradient routes, optimizers, seeds,
learning-rate grids, divergence, determinism, float32, and config checks.

Compiled programs are shared through module-scoped fixtures: every ``make_train_runs`` is a compile.
"""

import functools
import os

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lecture6 import runs as R
from lecture6 import train as T
from lecture6.data import xor
from lecture6.mlp import init_std
from lecture6.rundir import load_config_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = load_config_file(os.path.join(ROOT, "configs", "base_train.py")).to_dict()
XOR = xor()
KEY = jax.random.key(20260126)

# Trajectories of two exact gradient routes agree to rounding: a few hundred float64 steps of a
# well-conditioned problem amplify 1e-16 differences to well below this.
TRAJ_TOL = 1e-9


def cfg(**kw):
    """The base config, small: 8 seeds, 40 epochs, float64."""
    return dict(BASE, **{"seeds": 8, "epochs": 40, "log_every": 10, "lr": 0.1, "dtype": "float64", **kw})


def run(config, data=XOR, key=KEY, **kw):
    runs = R.make_train_runs(config, data, **kw)
    return runs, runs.train(key, runs.seed, runs.lr)


def take(tree, i):
    """Run ``i`` of every leaf, read on the host (indexing a device array compiles a program per shape)."""
    return jax.tree.map(lambda a: np.asarray(a)[i], tree)


def assert_params_close(p, q, tol=TRAJ_TOL):
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


# --- An independent route: the slide's network and f_MSE written here, not with lecture6.mlp/backprop ---


ACTS = {"relu": lambda z: jnp.where(z > 0, z, 0.0), "tanh": jnp.tanh, "sigmoid": lambda z: 1 / (1 + jnp.exp(-z)),
        "identity": lambda z: z}


def net(p, X, act):
    h = X
    for k, layer in enumerate(p):
        z = h @ layer["W"].T + layer["b"][None, :]
        h = ACTS[act](z) if k < len(p) - 1 else z
    return h


def f_mse(p, X, y, act):
    """1/(2n) sum_i ||g(x_i) - y_i||^2, the slide's cost."""
    return 0.5 * jnp.mean(jnp.sum((net(p, X, act) - y.reshape(len(X), -1)) ** 2, axis=1))


_init_seeds = jax.jit(T.init_seeds, static_argnums=(1, 2), static_argnames=("init", "scale", "bias_init", "dtype"))
net_jit = jax.jit(net, static_argnums=2)

NOISE = 128  # entries of the one normal draw initial() reads, enough for every config here


@functools.partial(jax.jit, static_argnums=1)
def _noise(key, dtype):
    return jax.random.normal(key, (NOISE,), dtype)


def initial(config):
    """Every run's initial params as lecture6.train documents them, built here with NumPy: run ``s``'s
    weights are entries ``s P .. (s + 1) P - 1`` of one standard normal draw from ``split(KEY)[0]`` over the
    ``P`` weights of every seed, layer by layer ``W = init_std * noise`` (row-major), ``b = bias_init``.
    Threefry gives entry ``i`` the same value whatever the length drawn, so one compiled draw of NOISE
    entries per dtype serves every config."""
    sizes = (2,) + (config["width"],) * config["depth"] + (1,)
    seeds, P = config["seeds"], T.n_weights(sizes)
    assert seeds * P <= NOISE
    dtype = jnp.dtype(config["dtype"])
    noise = np.asarray(_noise(jax.random.split(KEY)[0], dtype))[: seeds * P].reshape(seeds, P)
    params, start = [], 0
    for i, o in zip(sizes[:-1], sizes[1:]):
        std = np.asarray(init_std(config["init"], i, o, config["init_scale"]), dtype)
        params.append({"W": std * noise[:, start:start + o * i].reshape(seeds, o, i),
                       "b": np.full((seeds, o), config["bias_init"], dtype)})
        start += o * i
    return params


def sgd_replay(p, X, y, act, eps, steps):
    """``steps`` updates p <- p - eps df/dp of the independent f_MSE, one compiled loop; returns the
    final p and its f_MSE."""
    step = lambda p, _: (jax.tree.map(lambda a, g: a - eps * g, p, jax.grad(f_mse)(p, X, y, act)), None)
    p = jax.lax.scan(step, p, None, length=steps)[0]
    return p, f_mse(p, X, y, act)


sgd_replay = jax.jit(sgd_replay, static_argnums=(3, 5))


# --- Shared programs ---------------------------------------------------------------------------------


GRID = cfg(activation="sigmoid", width=3, bias_init=0.1, lrs=(0.05, 0.3), epochs=30, log_every=10)


@pytest.fixture(scope="module")
def grid_vmap():
    return run(dict(GRID, layout="vmap"))


@pytest.fixture(scope="module")
def grid_seeds_last():
    return run(dict(GRID, layout="seeds_last"))


@pytest.fixture(scope="module")
def one_network_train():
    """``jax.jit(jax.vmap(train))`` of make_train's one-network ``train`` for GRID, counted by chex."""
    chex.clear_trace_counter()
    train = chex.assert_max_traces(T.make_train(GRID, XOR), n=1)
    return jax.jit(jax.vmap(train, in_axes=(None, 0, 0)))


def assert_same_training(a, b):
    assert_params_close(a.params, b.params)
    for field in ("loss", "accuracy", "final_loss", "final_accuracy"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=TRAJ_TOL, atol=TRAJ_TOL)
    np.testing.assert_array_equal(a.solved, b.solved)
    np.testing.assert_array_equal(a.epochs, b.epochs)


def test_seeds_last_layout_matches_the_vmapped_library_step(grid_vmap, grid_seeds_last):
    (_, a), (_, b) = grid_vmap, grid_seeds_last
    assert_same_training(a, b)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_seeds_last_layout_matches_vmap_with_every_other_activation(activation):
    """The layout that trains the README's XOR figures, with the slides' ReLU (its kink at 0 included) and tanh."""
    grid = dict(GRID, activation=activation, lrs=(0.3,))
    (_, a), (_, b) = run(dict(grid, layout="vmap")), run(dict(grid, layout="seeds_last"))
    assert a.solved.any() and not a.solved.all()  # a grid whose runs the comparison can tell apart
    assert_same_training(a, b)


def test_every_learning_rate_of_a_grid_is_the_one_network_train(grid_vmap, one_network_train):
    """Both blocks of the grid: runs 0-7 (lr 0.05) and 8-15 (lr 0.3) are make_train's train, vmapped."""
    runs, res = grid_vmap
    np.testing.assert_array_equal(res.seed, np.tile(np.arange(8), 2))
    np.testing.assert_array_equal(res.lr, np.repeat([0.05, 0.3], 8))
    for block, lr in ((slice(0, 8), 0.05), (slice(8, 16), 0.3)):
        single = one_network_train(KEY, jnp.arange(8), jnp.full(8, lr))
        assert_params_close(take(res.params, block), single.params, tol=1e-12)
        np.testing.assert_allclose(res.loss[block], single.loss, rtol=1e-12)
    # the two rates give different networks: the comparison above is not between equal blocks
    assert np.abs(res.final_loss[:8] - res.final_loss[8:]).max() > 1e-3


def test_no_retrace_between_calls(grid_vmap, one_network_train):
    runs, first = grid_vmap
    other = runs.train(jax.random.fold_in(KEY, 1), runs.seed, runs.lr)
    assert runs.train._cache_size() == 1
    assert not np.allclose(first.final_loss, other.final_loss)  # another key, other networks
    for k in range(3):  # chex.assert_max_traces(n=1) raises on a second trace
        one_network_train(jax.random.fold_in(KEY, k), jnp.arange(8), jnp.full(8, 0.1))


def test_train_is_deterministic(grid_vmap):
    """The same key gives bit-identical results on a rerun."""
    runs, first = grid_vmap
    again = runs.train(KEY, runs.seed, runs.lr)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("layout", ["vmap", "seeds_last"])
def test_sgd_is_the_slides_update_written_out(layout, grid_vmap, grid_seeds_last):
    """p <- p - eps df/dp with jax.grad of f_MSE written independently, per run, in a Python loop:
    two seeds at each rate of the grid, in both layouts."""
    _, res = grid_vmap if layout == "vmap" else grid_seeds_last
    X, y = XOR
    res = take(res, slice(None))  # on the host
    for r in (0, 1, 8, 9):
        p, loss = sgd_replay(take(initial(GRID), int(res.seed[r])), X, y, "sigmoid", res.lr[r], GRID["epochs"])
        assert_params_close(p, take(res.params, r))
        np.testing.assert_allclose(res.final_loss[r], loss, rtol=1e-12)


def test_adam_matches_optax_directly():
    """Adam with its rate injected per run (optax.inject_hyperparams) is optax.adam(lr) itself."""
    config = cfg(seeds=2, epochs=15, log_every=5, lr=0.05, optimizer="adam", layout="vmap")
    _, res = run(config)
    X, y = XOR
    opt = optax.adam(0.05)

    def step(carry, _):
        p, state = carry
        u, state = opt.update(jax.grad(f_mse)(p, X, y, "relu"), state, p)
        return (optax.apply_updates(p, u), state), None

    p0 = initial(config)
    ref = jax.jit(jax.vmap(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=15)[0][0]))(p0)
    assert_params_close(ref, res.params)


MINI = cfg(seeds=2, epochs=3, log_every=1, batch_size=2, lr=0.2, depth=2, activation="tanh", layout="vmap")


@jax.jit
def epoch_order(s, e):
    """The order of the 4 examples in epoch ``e`` of seed ``s`` of MINI: a permutation drawn from the epoch
    folded into the seed's order key (the second half of ``split(KEY)``, split over the 2 seeds)."""
    order_key = jax.random.split(jax.random.split(KEY)[1], 2)[s]
    return jax.random.permutation(jax.random.fold_in(order_key, e), 4)


@functools.partial(jax.jit, static_argnums=3)
def sgd_step(p, X, y, act, eps):
    """One update p <- p - eps df/dp of the independent f_MSE; returns (f before the step, the new p)."""
    value, g = jax.value_and_grad(f_mse)(p, X, y, act)
    return value, jax.tree.map(lambda a, b: a - eps * b, p, g)


@pytest.fixture(scope="module")
def minibatch():
    return run(MINI)[1]


def test_minibatches_are_reshuffled_each_epoch_and_the_history_is_the_epoch_mean(minibatch):
    """batch_size 2: two steps per epoch over an order drawn per epoch and seed; the history entry of an
    epoch is the mean of its two minibatch losses, each taken before its step (replayed here)."""
    X, y = XOR
    orders = set()
    for s in range(2):
        p = take(initial(MINI), s)
        for e in range(3):
            perm = np.asarray(epoch_order(s, e))
            orders.add(tuple(perm.tolist()))
            losses = []
            for rows in perm.reshape(2, 2):
                value, p = sgd_step(p, X[rows], y[rows], "tanh", 0.2)
                losses.append(float(value))
            np.testing.assert_allclose(minibatch.loss[s, e], np.mean(losses), rtol=1e-12)
        assert_params_close(p, take(minibatch.params, s))
    assert len(orders) > 1  # the order changes between epochs and seeds


def _trajectories(config):
    return [run(dict(config, grad=g))[1] for g in ("autodiff", "hand")]


def test_hand_and_autodiff_give_the_same_minibatch_trajectory(minibatch):
    hand = run(dict(MINI, grad="hand"))[1]
    assert_params_close(minibatch.params, hand.params)
    np.testing.assert_allclose(minibatch.loss, hand.loss, rtol=TRAJ_TOL, atol=TRAJ_TOL)
    moved = np.abs(np.asarray(hand.params[0]["W"]) - np.asarray(initial(MINI)[0]["W"])).max()
    assert moved > 1e-2  # training moved the params: not a comparison of two initializations


def test_default_config_in_float32_with_x64_off():
    """The scripts' default -- relu, f_MSE, SGD, float32, 64-bit mode off: hand and autodiff agree, and
    both follow a float64 replay of the slide's update from the same float32 initial weights."""
    config = dict(BASE, seeds=16, epochs=200, log_every=100, layout="vmap", progress_every=0)
    with jax.enable_x64(False):
        auto, hand = _trajectories(config)
        assert auto.final_loss.dtype == jnp.float32 and auto.params[0]["W"].dtype == jnp.float32
        p0 = initial(config)
    assert_params_close(auto.params, hand.params, tol=1e-5)  # float32 rounding, grown over 200 steps
    np.testing.assert_array_equal(auto.solved, hand.solved)
    X, y = XOR
    p0 = jax.tree.map(lambda a: a.astype(jnp.float64), p0)
    ref = jax.vmap(lambda p: sgd_replay(p, X, y, "relu", 0.1, 200)[0])(p0)
    assert_params_close(auto.params, ref, tol=1e-4)


def test_known_good_config_solves_xor():
    """Width 8 tanh (Glorot) networks with plain SGD solve XOR from almost every seed."""
    _, res = run(cfg(seeds=64, epochs=1000, log_every=100, width=8, activation="tanh", init="glorot", lr=0.5))
    assert np.mean(res.solved) >= 0.9 and not res.diverged.any()
    i = int(np.argmax(res.solved))  # solved: all four outputs within 0.5, by the independent forward
    assert np.all(np.abs(np.asarray(net_jit(take(res.params, i), XOR[0], "tanh"))[:, 0] - XOR[1]) < 0.5)
    med = np.median(np.asarray(res.loss), axis=0)
    assert med[-1] < 0.5 * med[0]


def test_linear_network_never_solves_xor():
    """No affine model solves XOR: identity activation, every seed fails at f_MSE = 1/8 (least squares)."""
    _, res = run(cfg(seeds=32, epochs=300, log_every=100, activation="identity", lr=0.2))
    assert not res.solved.any()
    np.testing.assert_allclose(np.median(res.final_loss), 1 / 8, rtol=1e-3)


@pytest.fixture(scope="module")
def diverging():
    """A grid whose second rate diverges; progress lines collected."""
    seen = []
    runs, res = run(cfg(lrs=(0.1, 1e6), seeds=4, epochs=40, log_every=10), progress=lambda *a: seen.append(a),
                    progress_every=20)
    jax.effects_barrier()
    # This run's lines only, frozen: a test that trains ``runs`` again (the same program, so the same
    # progress callback) appends its own lines to ``seen``.
    return runs, res, tuple(seen)


def test_divergence_is_detected_per_seed_and_kept_out_of_aggregates(diverging):
    runs, res, seen = diverging
    lr = np.asarray(res.lr)
    assert res.diverged[lr > 1].all() and not res.diverged[lr < 1].any()
    assert R.diverged_report(res) == {"count": 4, "runs": [4, 5, 6, 7], "seeds": [0, 1, 2, 3]}
    rows = R.aggregate_history(res)
    assert all(r["runs"] == 4 for r in rows)
    finite = np.asarray(res.loss)[:4]  # aggregates over the four finite runs only, checked by hand
    np.testing.assert_allclose([r["loss_median"] for r in rows], np.median(finite, axis=0), rtol=1e-12)
    np.testing.assert_allclose([r["loss_mean"] for r in rows], finite.mean(axis=0), rtol=1e-12)
    assert not res.solved[lr > 1].any()
    # progress every 20 epochs: at 20 the huge-rate runs are still finite (loss ~1e227), by 40 they are not
    assert [(e, n) for e, _, n, _, _ in seen] == [(20, 8), (40, 4)]
    np.testing.assert_allclose(seen[1][1], finite[:, 3].mean(), rtol=1e-12)


def test_all_diverged_aggregates_are_none(diverging):
    runs = diverging[0]
    res = runs.train(KEY, runs.seed, np.full(runs.lr.shape, 1e8))  # the same program, every rate diverging
    assert res.diverged.all()
    assert R.aggregate_history(res)[0]["loss_median"] is None


def test_seed_draws_do_not_depend_on_the_number_of_seeds():
    sizes = (2, 3, 1)

    @jax.jit  # both families in one program: (params, order key data) of seed s out of 3 and out of 7
    def three_and_seven(s):
        draws = (T.draw_network(KEY, s, T.check_config(cfg(seeds=n)), sizes) for n in (3, 7))
        return [(params, jax.random.key_data(order_key)) for params, order_key in draws]

    draws = [jax.tree.map(np.asarray, three_and_seven(s)) for s in range(6)]
    for s in range(3):
        (a, ka), (b, kb) = draws[s]
        assert_params_close(a, b, tol=0)
        np.testing.assert_array_equal(ka, kb)
    assert not np.allclose(draws[0][0][0][0]["W"], draws[1][0][0][0]["W"])
    # a seed outside [0, seeds) is NaN, never another seed's weights
    assert np.isnan(draws[5][0][0][0]["W"]).all() and not np.isnan(draws[5][1][0][0]["W"]).any()


def test_init_seeds_has_the_init_std(rng):
    """Mean and standard deviation of 200 x 40 x 50 He draws within 5 standard errors of N(0, 2/50)."""
    W = np.asarray(_init_seeds(KEY, (50, 40, 1), 200, init="he", dtype="float64")[0]["W"])
    std, n = np.sqrt(2 / 50), W.size
    assert W.shape == (200, 40, 50)
    assert abs(W.mean()) < 5 * std / np.sqrt(n)
    assert abs(W.std() - std) < 5 * std / np.sqrt(2 * n)  # the standard error of a sample std


def test_softmax_ce_training_on_blobs(rng):
    """Three separable Gaussian blobs: a ReLU net with softmax CE and minibatch SGD fits them."""
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    labels = rng.integers(0, 3, size=60)
    X = centers[labels] + 0.3 * rng.normal(size=(60, 2))
    _, res = run(cfg(loss="softmax_ce", width=8, batch_size=16, epochs=30, log_every=10, seeds=2, lr=0.2),
                 (X, labels))
    assert res.loss.shape == (2, 3)
    assert (np.asarray(res.final_accuracy) > 0.95).all()


# --- Config and data checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("lr", 0.0), ("lr", -1.0), ("width", 0), ("activation", "swish"), ("optimizer", "rmsprop"),
     ("grad", "numeric"), ("log_every", 7), ("seeds", 0), ("lrs", (0.1, -0.1)), ("momentum", 1.0)],
)
def test_bad_config_names_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        T.check_config(cfg(**{field: value}))
    assert f"config.{field}" in str(err.value) and repr(value) in str(err.value)


_BAD = {  # per field, values it must reject
    "width": st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.booleans()),
    "depth": st.one_of(st.integers(max_value=0), st.floats()),
    "activation": st.text(max_size=8).filter(lambda s: s not in T.ACTIVATIONS),
    "loss": st.text(max_size=8).filter(lambda s: s not in T.LOSSES),
    "init_scale": st.one_of(st.floats(max_value=0.0), st.just(float("inf")), st.just(float("nan"))),
    "bias_init": st.one_of(st.just(float("inf")), st.just(float("nan")), st.text(max_size=3)),
    "optimizer": st.text(max_size=8).filter(lambda s: s not in T.OPTIMIZERS),
    "lr": st.one_of(st.floats(max_value=0.0), st.just(float("nan")), st.none()),
    "lrs": st.lists(st.floats(max_value=0.0), min_size=1, max_size=3).map(tuple),
    "momentum": st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9)),
    "epochs": st.integers(max_value=0),
    "batch_size": st.integers(max_value=0),
    "seeds": st.one_of(st.integers(max_value=0), st.floats(min_value=1, max_value=10)),
    "seed": st.one_of(st.floats(), st.text(max_size=3)),
    "dtype": st.text(max_size=8).filter(lambda s: s not in T.DTYPES),
    "log_every": st.integers(min_value=3, max_value=39).filter(lambda k: 40 % k),
    "layout": st.text(max_size=8).filter(lambda s: s not in T.LAYOUTS),
}


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(st.sampled_from(sorted(_BAD)).flatmap(lambda f: st.tuples(st.just(f), _BAD[f])))
def test_every_bad_value_is_an_error_naming_the_field(field_value):
    field, value = field_value
    with pytest.raises(ValueError) as err:
        T.check_config(cfg(**{field: value}))
    assert f"config.{field} = {value!r}" in str(err.value)


def test_missing_field_is_an_error():
    config = cfg()
    del config["momentum"]
    with pytest.raises(ValueError, match=r"lacks the training field\(s\) \['momentum'\]"):
        T.check_config(config)


@pytest.mark.parametrize("data, match", [
    ((XOR[0], np.zeros(3)), "rows like X"),
    ((np.where(XOR[0] == 1, np.nan, XOR[0]), XOR[1]), "X contains non-finite values"),
    ((XOR[0], np.array([0.0, np.inf, 1.0, 0.0])), "Y contains non-finite values"),
    ((XOR[0][0], XOR[1]), r"X must be \(n, d\)"),
])
def test_bad_data_is_an_error(data, match):
    with pytest.raises(ValueError, match=match):
        T.prepare_data(data, T.check_config(cfg()))


def test_negative_labels_are_an_error():
    with pytest.raises(ValueError, match="class labels must be >= 0, got min -1"):
        T.prepare_data((XOR[0], np.array([0, 1, -1, 0])), T.check_config(cfg(loss="softmax_ce")))
