"""Tests of the compiled training loop (lecture6.train): gradients, layouts, optimizers, seeds, divergence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lecture6 import train as T
from lecture6.backprop import objective
from lecture6.data import xor
from lecture6.losses import mse, softmax_cross_entropy
from lecture6.mlp import forward, init_mlp

# Trajectories of two exact gradient routes agree to rounding: a few hundred float64 steps of a
# well-conditioned problem amplify 1e-16 differences to well below this.
TRAJ_TOL = 1e-9

XOR = xor()


def small(**kw):
    cfg = {"seeds": 8, "epochs": 40, "log_every": 10, "lr": 0.1, "dtype": "float64"}
    cfg.update(kw)
    return cfg


def leaves(params):
    return [np.asarray(a) for a in jax.tree.leaves(params)]


def take(tree, i):
    """Seed ``i`` (or a slice of seeds) of params with a leading seed axis."""
    return jax.tree.map(lambda a: a[i], tree)


def assert_params_close(p, q, tol=TRAJ_TOL):
    for a, b in zip(leaves(p), leaves(q)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("layout, optimizer, depth", [("seeds_last", "adam", 2), ("vmap", "sgd", 1)])
def test_hand_and_autodiff_give_the_same_trajectory(key, layout, optimizer, depth):
    cfg = small(layout=layout, optimizer=optimizer, activation="tanh", depth=depth)
    runs = {g: T.make_train(dict(cfg, grad=g), XOR)(key) for g in ("autodiff", "hand")}
    assert_params_close(runs["autodiff"].params, runs["hand"].params)
    np.testing.assert_allclose(runs["autodiff"].loss, runs["hand"].loss, rtol=TRAJ_TOL, atol=TRAJ_TOL)
    # and training moved the params: the comparison is not between two initializations
    sizes = (2,) + (2,) * depth + (1,)
    init = T.init_seeds(jax.random.split(key)[0], sizes, 8, dtype=jnp.float64)
    assert max(np.abs(a - b).max() for a, b in zip(leaves(init), leaves(runs["hand"].params))) > 1e-2


def test_seeds_last_layout_matches_the_vmapped_library_step(key):
    """The fast layout against the per-seed step built on lecture6.mlp.forward and jax.grad."""
    cfg = small(optimizer="momentum", activation="relu", width=3, bias_init=0.1)
    a = T.make_train(dict(cfg, layout="seeds_last"), XOR)(key)
    b = T.make_train(dict(cfg, layout="vmap"), XOR)(key)
    assert_params_close(a.params, b.params)
    np.testing.assert_allclose(a.final_loss, b.final_loss, rtol=TRAJ_TOL, atol=TRAJ_TOL)
    np.testing.assert_array_equal(a.solved, b.solved)


def test_sgd_is_the_slides_update_written_out(key):
    """p <- p - eps grad, written with jax.grad and a Python loop, per seed (an independent route)."""
    eps, steps, S = 0.3, 25, 2
    res = T.make_train(small(seeds=S, epochs=steps, log_every=steps, lr=eps, activation="sigmoid"),
                       XOR)(key)
    init = T.init_seeds(jax.random.split(key)[0], (2, 2, 1), S, dtype=jnp.float64)
    X, y = XOR
    grad = jax.jit(jax.grad(lambda p: objective(p, X, y, activation="sigmoid", loss="mse")))
    for s in range(S):
        p = take(init, s)
        for _ in range(steps):
            g = grad(p)
            p = jax.tree.map(lambda a, b: a - eps * b, p, g)
        assert_params_close(p, take(res.params, s))
        out, _ = forward(p, X, activation="sigmoid")
        np.testing.assert_allclose(res.final_loss[s], mse(out, y), rtol=1e-12)


def test_adam_matches_optax_directly(key):
    S, steps, lr = 2, 15, 0.05
    res = T.make_train(small(seeds=S, epochs=steps, log_every=5, lr=lr, optimizer="adam"), XOR)(key)
    init = T.init_seeds(jax.random.split(key)[0], (2, 2, 1), S, dtype=jnp.float64)
    X, y = XOR
    opt = optax.adam(lr)
    grad = jax.jit(jax.grad(lambda p: objective(p, X, y, activation="relu", loss="mse")))
    for s in range(S):
        p = take(init, s)
        st = opt.init(p)
        for _ in range(steps):
            u, st = opt.update(grad(p), st, p)
            p = optax.apply_updates(p, u)
        assert_params_close(p, take(res.params, s))


def test_known_good_config_solves_xor(key):
    """Width 8 tanh (Glorot) networks with plain SGD solve XOR from almost every seed."""
    res = T.make_train(small(seeds=64, epochs=1000, log_every=100, width=8, activation="tanh",
                             init="glorot", lr=0.5), XOR)(key)
    assert np.mean(res.solved) >= 0.9
    assert not res.diverged.any()
    # solved means all four outputs within 0.5 of the target; check one against the library forward
    i = int(np.argmax(res.solved))
    out, _ = forward(take(res.params, i), XOR[0], activation="tanh")
    assert np.all(np.abs(np.asarray(out)[:, 0] - XOR[1]) < 0.5)
    # the loss went down along the history (median over seeds)
    med = np.median(np.asarray(res.loss), axis=0)
    assert med[-1] < 0.5 * med[0]


def test_linear_network_never_solves_xor(key):
    """No affine model solves XOR: identity activation, every seed fails (the slide's point)."""
    res = T.make_train(small(seeds=32, epochs=300, log_every=100, activation="identity", lr=0.2), XOR)(key)
    assert not res.solved.any()
    np.testing.assert_allclose(np.median(res.final_loss), 1 / 8, rtol=1e-3)


def test_no_retrace_between_calls(key):
    train = T.make_train(small(), XOR)
    a = train(key)
    b = train(jax.random.fold_in(key, 1))
    c = train(jax.random.fold_in(key, 2))
    assert train.n_traces == 1
    assert not np.allclose(a.final_loss, b.final_loss)  # different keys, different runs
    assert c.loss.shape == (8, 4)


def test_compile_then_call_reuses_the_program(key):
    train = T.make_train(small(), XOR)
    seconds = train.compile(key)
    assert seconds > 0
    train(key)
    train(jax.random.fold_in(key, 3))
    assert train.n_traces == 1


def test_divergence_is_detected_per_seed_and_kept_out_of_aggregates(key):
    """A huge learning rate in a grid diverges; its runs are flagged, the others are not."""
    res = T.make_train(small(lrs=(0.1, 1e6), seeds=4, epochs=50, log_every=10), XOR)(key)
    lr = np.asarray(res.lr)
    assert res.diverged[lr > 1].all()
    assert not res.diverged[lr < 1].any()
    rep = T.diverged_report(res)
    assert rep["count"] == 4 and rep["runs"] == [4, 5, 6, 7] and rep["seeds"] == [0, 1, 2, 3]
    rows = T.aggregate_history(res)
    assert all(r["runs"] == 4 for r in rows)
    assert all(np.isfinite(r["loss_median"]) for r in rows)
    assert not res.solved[lr > 1].any()


def test_all_diverged_aggregates_are_none(key):
    res = T.make_train(small(lr=1e8, seeds=2, epochs=20, log_every=10), XOR)(key)
    assert res.diverged.all()
    assert T.aggregate_history(res)[0]["loss_median"] is None


def test_lr_grid_runs_share_seeds(key):
    res = T.make_train(small(lrs=(0.05, 0.2), seeds=3), XOR)(key)
    assert res.final_loss.shape == (6,)
    np.testing.assert_array_equal(res.seed, [0, 1, 2, 0, 1, 2])
    # each block of the grid is exactly the single-lr run with the same key (same seeds)
    for lr, part in ((0.2, slice(3, 6)),):
        single = T.make_train(small(lr=lr, seeds=3), XOR)(key)
        assert_params_close(take(res.params, part), single.params, tol=1e-12)


def test_seed_blocks_give_the_same_result(key):
    cfg = small(seeds=8, layout="vmap")
    a = T.make_train(cfg, XOR)(key)
    b = T.make_train(dict(cfg, seed_block=2), XOR)(key)
    assert_params_close(a.params, b.params, tol=1e-12)


def test_seed_results_do_not_depend_on_the_number_of_seeds(key):
    a = T.make_train(small(seeds=3), XOR)(key)
    b = T.make_train(small(seeds=7), XOR)(key)
    assert_params_close(a.params, take(b.params, slice(0, 3)), tol=1e-12)


def test_full_batch_when_batch_size_is_at_least_n(key):
    a = T.make_train(small(batch_size=4, layout="vmap"), XOR)(key)
    b = T.make_train(small(batch_size=100, layout="vmap"), XOR)(key)
    assert_params_close(a.params, b.params, tol=1e-12)


@pytest.mark.parametrize("layout", ["seeds_last", "vmap"])
def test_minibatches_are_reshuffled_each_epoch(key, layout):
    """batch_size 1: one step per example, in an order that changes from epoch to epoch."""
    X, y = XOR
    cfg = small(seeds=2, epochs=2, log_every=1, batch_size=1, lr=0.1, layout=layout)
    res = T.make_train(cfg, XOR)(key)
    init = T.init_seeds(jax.random.split(key)[0], (2, 2, 1), 2, dtype=jnp.float64)
    skeys = jax.random.split(jax.random.split(key)[1], 2)
    grad = jax.jit(jax.grad(lambda p, Xb, yb: objective(p, Xb, yb, activation="relu", loss="mse")))
    orders = set()
    for s in range(2):
        p = take(init, s)
        perms = [np.asarray(jax.random.permutation(jax.random.fold_in(skeys[s], e), 4)) for e in range(2)]
        orders.update(tuple(q.tolist()) for q in perms)
        for perm in perms:
            for i in perm:
                g = grad(p, X[i:i + 1], y[i:i + 1])
                p = jax.tree.map(lambda a, b: a - 0.1 * b, p, g)
        assert_params_close(p, take(res.params, s))
    assert len(orders) > 1  # the order changes (between epochs and seeds)


def test_minibatch_history_is_the_epoch_mean(key):
    res = T.make_train(small(batch_size=2, epochs=1, log_every=1, seeds=1, layout="vmap"), XOR)(key)
    assert res.loss.shape == (1, 1)
    assert 0.0 <= float(res.accuracy[0, 0]) <= 1.0


def test_seeds_last_losses_match_the_library(key, rng):
    S, B, K = 3, 5, 4
    out = rng.normal(size=(S, B, K))
    Y = np.eye(K)[rng.integers(0, K, size=B)]
    rows = T.seeds_last_rows(np.moveaxis(out, 0, -1))
    for name, ref in (("mse", mse), ("softmax_ce", softmax_cross_entropy)):
        value, grad = T.loss_seeds_last(rows, T.seeds_last_rows(Y), name)
        np.testing.assert_allclose(value, [ref(out[s], Y) for s in range(S)], rtol=1e-12)
        g = np.array([[np.asarray(grad[r][k]) for k in range(K)] for r in range(B)])  # (B, K, S)
        want = np.stack([jax.grad(ref)(jnp.asarray(out[s]), Y) for s in range(S)], axis=-1)
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=1e-12)


def test_seeds_last_round_trip(key):
    p = T.init_seeds(key, (3, 4, 2), 5, dtype=jnp.float64)
    assert_params_close(T.from_seeds_last(T.to_seeds_last(p)), p, tol=0)


def test_init_seeds_has_init_mlp_statistics(key):
    p = T.init_seeds(key, (50, 40, 1), 200, init="he", dtype=jnp.float64)
    assert p[0]["W"].shape == (200, 40, 50)
    np.testing.assert_allclose(np.std(p[0]["W"]), np.sqrt(2 / 50), rtol=0.02)
    q = init_mlp(key, (50, 40, 1), init="he")
    assert q[0]["W"].shape == p[0]["W"].shape[1:]


def test_softmax_ce_training_on_blobs(key, rng):
    """Three separable Gaussian blobs: a ReLU net with softmax CE and minibatch SGD fits them."""
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    labels = rng.integers(0, 3, size=60)
    X = centers[labels] + 0.3 * rng.normal(size=(60, 2))
    res = T.make_train(small(loss="softmax_ce", width=8, batch_size=16, epochs=30, log_every=10,
                             seeds=2, lr=0.2), (X, labels))(key)
    assert res.loss.shape == (2, 3)
    assert (np.asarray(res.final_accuracy) > 0.95).all()


def test_progress_callback_reports_chunks(key):
    seen = []
    train = T.make_train(small(epochs=40, log_every=10), XOR,
                         progress=lambda *a: seen.append(a), progress_every=20)
    jax.block_until_ready(train(key))
    jax.effects_barrier()
    assert [e for e, *_ in seen] == [20, 40]
    assert all(n == 8 for _, _, n, _, _ in seen)
    assert all(0.0 <= solved <= 1.0 and 0.0 <= acc <= 1.0 and solved <= acc for *_, solved, acc in seen)


@pytest.mark.parametrize(
    "field, value",
    [("lr", 0.0), ("lr", -1.0), ("width", 0), ("activation", "swish"), ("optimizer", "rmsprop"),
     ("grad", "numeric"), ("log_every", 7), ("seeds", 0), ("lrs", (0.1, -0.1)), ("momentum", 1.0)],
)
def test_bad_config_names_field_and_value(field, value):
    with pytest.raises(ValueError) as err:
        T.validate_config(small(**{field: value}))
    assert f"config.{field}" in str(err.value) and repr(value) in str(err.value)


def test_unknown_config_field_is_an_error():
    with pytest.raises(ValueError, match="unknown config field.*'widht'"):
        T.validate_config({"widht": 3})


def test_bad_data_is_an_error():
    with pytest.raises(ValueError, match="rows like X"):
        T.make_train(small(), (XOR[0], np.zeros(3)))


def test_softmax_ce_hand_seeds_last_matches_autodiff_vmap(key, rng):
    """The seeds-last hand backprop with softmax CE against the vmapped jax.grad of the library loss."""
    X = rng.normal(size=(9, 2))
    labels = rng.integers(0, 3, size=9)
    cfg = small(loss="softmax_ce", width=3, seeds=4, epochs=20, log_every=10, lr=0.3, batch_size=9)
    a = T.make_train(dict(cfg, layout="seeds_last", grad="hand"), (X, labels))(key)
    b = T.make_train(dict(cfg, layout="vmap", grad="autodiff"), (X, labels))(key)
    assert_params_close(a.params, b.params)
    np.testing.assert_allclose(a.accuracy, b.accuracy, atol=1e-12)
    np.testing.assert_allclose(a.final_accuracy, b.final_accuracy, atol=1e-12)
