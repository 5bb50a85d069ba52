"""The checker's fast mode (every entry against autodiff, finite differences along random directions, group
testing to name the entry) and its memory budget, on small networks: the full-size figures (784-64-10 on
4,000 MNIST images) are benchmarks/bench_gradcheck.py's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_gradcheck import J3, X3, Z, f3, relu_jac, softplus_wrong_rule, tanh_wrong_bwd, x_sin_x_affine_rule

from lecture6 import backprop, gradcheck
from lecture6.gradcheck import check_gradient, check_jacobian, programs

#: 404 parameters. The first layer is scaled by 1e-3, so that of its 64 x 16 ReLU units some sit within
#: 1e-5 of their kink, as on thousands of MNIST images: random directions cross kinks at the longer steps.
SIZES, N, FIRST_SCALE = (20, 16, 4), 64, 1e-3


def relu_ce_objective(params, X, Y, l2):
    """J = mean softmax cross-entropy of a ReLU MLP + l2/2 sum ||W||^2, written here, not in lecture6."""
    h = X
    for k, layer in enumerate(params):
        z = h @ layer["W"].T + layer["b"][None, :]
        h = jnp.maximum(z, 0.0) if k + 1 < len(params) else z
    return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(h, axis=1), axis=1)) + 0.5 * l2 * sum(
        jnp.sum(layer["W"] ** 2) for layer in params)


def relu_problem(seed, dtype=np.float64):
    r = np.random.default_rng(seed)
    params = [{"W": r.normal(size=(m, d)) * np.sqrt(2 / d), "b": r.normal(scale=0.1, size=m)}
              for d, m in zip(SIZES[:-1], SIZES[1:])]
    params[0] = {k: FIRST_SCALE * v for k, v in params[0].items()}
    X, Y = r.normal(size=(N, SIZES[0])), np.eye(SIZES[-1])[r.integers(0, SIZES[-1], size=N)]
    params, X, Y = jax.tree.map(lambda a: np.asarray(a, dtype), (params, X, Y))

    def f(p):
        return relu_ce_objective(p, X, Y, 0.01)

    def g(p):
        return backprop.backprop(p, X, Y, activation="relu", loss="softmax_ce", l2=0.01)

    return f, g, params, X


def flat_index(params, layer, name, idx):
    """Column of ``params[layer][name][idx]`` in ``ravel_pytree`` order, counted by hand."""
    offset = 0
    for k, p in enumerate(params):
        for key in sorted(p):  # dict leaves in sorted key order: "W", then "b"
            if (k, key) == (layer, name):
                return offset + int(np.ravel_multi_index(idx, p[key].shape))
            offset += p[key].size
    raise KeyError((layer, name))


def kinks_within(params, X, step, seed):
    """How many ReLU units change sign between x - step u and x + step u for random signs u on W1, b1."""
    W, b = params[0]["W"], params[0]["b"]
    r = np.random.default_rng(seed)
    z, dz = X @ W.T + b, X @ r.choice([-1.0, 1.0], size=W.shape).T + r.choice([-1.0, 1.0], size=b.shape)
    return int(np.sum(np.abs(z) < step * np.abs(dz)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_mode_passes_a_correct_relu_backprop_though_its_directions_cross_kinks(seed):
    f, g, params, X = relu_problem(seed)
    assert kinks_within(params, X, 6e-6, seed) > 3  # the longest step crosses kinks: shorter ones are needed
    res = check_gradient(f, params, g, mode="fast")
    assert res.ok and res.mode == "fast", res.report()
    assert res.jacobians["hand"].shape == (1, 404) and "4 random directions" in res.notes[0]
    assert not any("disagreed" in n for n in res.notes), res.notes  # no kink mistaken for a wrong entry


def test_fast_mode_in_float32_passes_backprop_and_names_a_wrong_entry():
    # autodiff and the hand gradient in float32 (tolerances 1e-4, 1e-5); finite differences in float64
    f, g, params32, _ = relu_problem(1, np.float32)
    res = check_gradient(f, params32, g, mode="fast")
    assert res.ok and (res.rtol, res.atol) == (1e-4, 1e-5), res.report()
    assert not any("disagreed" in n for n in res.notes), res.notes  # no alarm that no entry confirmed
    wrong = check_gradient(f, params32, lambda p: _off(g(p)), mode="fast")
    assert not wrong.ok and wrong.worst == (0, flat_index(params32, 1, "W", (1, 2)))


def _off(grads):
    grads[1]["W"] = grads[1]["W"].at[1, 2].multiply(1.01)
    return grads


def test_fast_mode_names_a_wrong_hand_entry_by_its_path():
    f, g, params, _ = relu_problem(0)

    def wrong(p):
        grads = g(p)
        grads[1]["W"] = grads[1]["W"].at[1, 2].multiply(1.01)
        return grads

    res = check_gradient(f, params, wrong, mode="fast")
    col = flat_index(params, 1, "W", (1, 2))
    assert not res.ok and res.worst == (0, col) and res.mismatches == [(0, col)]
    assert res.hand_matches_autodiff is False and res.autodiff_matches_fd
    report = res.report()
    assert f"worst entry (row 0, col {col}) = df/dparams[1]['W'][1, 2]" in report
    ad = res.jacobians["jacrev"][0, col]
    assert res.jacobians["fd"][0, col] == pytest.approx(ad, rel=1e-6)  # examined: its FD value is in the report
    assert res.max_rel_error == pytest.approx(0.01, rel=1e-6)


def off_by(rule_factor, layer, name, idx):
    """The identity on ``params[layer][name]`` with a custom_jvp rule that scales one tangent entry."""
    @jax.custom_jvp
    def ident(W):
        return W

    @ident.defjvp
    def _(primals, tangents):
        return primals[0], tangents[0].at[idx].multiply(rule_factor)

    def wrap(p):
        p = [dict(layer_) for layer_ in p]
        p[layer][name] = ident(p[layer][name])
        return p

    return wrap


@pytest.mark.parametrize("layer,name,idx", [(1, "W", (1, 2)), (0, "W", (3, 7)), (0, "b", (5,))])
def test_fast_mode_names_an_entry_whose_custom_jvp_is_wrong_by_group_testing(layer, name, idx):
    # Autodiff is wrong at one entry and the hand gradient copies it: only finite differences can tell,
    # along directions through 404 inputs, then halving them down to the entry.
    f, _, params, _ = relu_problem(0)
    wrap = off_by(1.05, layer, name, idx)

    def f_wrong(p):
        return f(wrap(p))

    res = check_gradient(f_wrong, params, jax.grad(f_wrong), mode="fast")
    col = flat_index(params, layer, name, idx)
    assert res.hand_matches_autodiff and not res.autodiff_matches_fd and not res.ok
    assert res.fd_mismatches == [(0, col)] and res.worst == (0, col), res.report()
    ad, fd = res.jacobians["jacrev"][0, col], res.jacobians["fd"][0, col]
    assert ad == pytest.approx(1.05 * fd, rel=1e-5)  # the FD value of the named entry is the true derivative
    assert "autodiff DISAGREES with finite differences at 1 smooth entries" in res.report()


CASES = {
    "correct": (f3, X3, J3),
    "one entry off": (f3, X3, lambda x: J3(x).at[2, 1].multiply(1 + 1e-3)),
    "relu at 0, hand one-sided": (jax.nn.relu, np.array([0.0, 1.5, -2.0]), relu_jac),
    "relu at 0, hand outside": (jax.nn.relu, np.array([0.0, 1.0]), lambda z: jnp.diag(jnp.array([2.0, 1.0]))),
    "wrong custom_jvp copied": (softplus_wrong_rule, Z, lambda z: jnp.diag(jax.nn.sigmoid(-z))),
    "wrong custom_vjp copied": (tanh_wrong_bwd, Z, lambda z: jnp.diag(1 - jnp.tanh(z))),
    "no hand, wrong custom_jvp": (softplus_wrong_rule, Z, None),
}


@pytest.mark.parametrize("case", CASES)
def test_fast_and_full_modes_reach_the_same_verdict_on_the_same_entry(case):
    f, x, jac = CASES[case]
    full, fast = (check_jacobian(f, x, jac, mode=m) for m in ("full", "fast"))
    assert (full.mode, fast.mode) == ("full", "fast")
    for field in ("ok", "hand_matches_autodiff", "autodiff_matches_fd", "kinks_explain"):
        assert getattr(fast, field) == getattr(full, field), (field, fast.report(), full.report())
    assert fast.worst in full.mismatches if not full.ok else True, (fast.report(), full.report())
    assert set(fast.mismatches) <= set(full.mismatches)


def test_fast_mode_locates_a_jacfwd_jacrev_disagreement():
    hand = lambda z: jnp.diag(jnp.sin(z) + z * jnp.cos(z))  # noqa: E731  (the true derivative)
    res = check_jacobian(x_sin_x_affine_rule, Z, hand, mode="fast")
    assert not res.autodiff_modes_agree and not res.ok and res.mode_mismatches
    r, c = res.mode_mismatches[0]
    assert res.jacobians["jacfwd"][r, c] != pytest.approx(res.jacobians["jacrev"][r, c])
    assert "jacfwd and jacrev DISAGREE" in res.report()


def test_auto_mode_is_full_up_to_fast_above_inputs_and_fast_beyond(monkeypatch):
    def f(x):
        return jnp.sum(jnp.sin(x) * x)

    def grad(x):
        return jnp.sin(x) + x * jnp.cos(x)

    monkeypatch.setattr(gradcheck, "FAST_ABOVE", 5)
    x = np.linspace(-1.0, 1.0, 6)
    assert check_jacobian(f, x[:5], grad).mode == "full"
    res = check_jacobian(f, x, grad)
    assert res.mode == "fast" and res.ok, res.report()
    assert not check_jacobian(f, x, lambda x: grad(x).at[4].add(1e-3)).ok


# --- memory: a budget, batches, and a clear error instead of an allocator crash ------------------------


def test_map_in_batches_equals_vmap_whatever_the_batch():
    xs = np.arange(7.0)[:, None] * np.ones((7, 3))

    def fn(v):
        return jnp.sum(jnp.sin(v)) * v

    batches = (1, 2, 3, 7, 10)
    got = jax.jit(lambda a: [programs.map_in_batches(fn, a, b) for b in batches])(xs)
    for batch, out in zip(batches, got):
        np.testing.assert_allclose(np.asarray(out), np.asarray(jax.vmap(fn)(xs)), rtol=1e-15, err_msg=str(batch))
    assert "scan" in str(jax.make_jaxpr(lambda a: programs.map_in_batches(fn, a, 3))(xs))


def test_batch_size_follows_the_budget():
    assert programs.batch_size(100, 10, 1) == 1  # never zero
    assert programs.batch_size(100, 10, 250) == 25
    assert programs.batch_size(100, 10, 10**9) == 100
    assert programs.batch_size(10**9, 1, 10**12) == programs.BATCH_BYTES


@pytest.mark.parametrize("batch", [1, 3])
def test_a_full_check_in_batches_equals_one_in_a_single_batch(batch, rng, monkeypatch):
    A = rng.normal(size=(3, 7))

    def f(x):
        return jnp.tanh(A @ x)

    def jac(x):
        return (1 - jnp.tanh(A @ x) ** 2)[:, None] * A

    x = rng.normal(size=7)
    whole = check_jacobian(f, x, jac)
    monkeypatch.setattr(programs, "batch_size", lambda n, each, budget: min(n, batch))  # 7 columns: 7 or 3 batches
    parts = check_jacobian(f, x, jac)
    assert whole.ok and parts.ok
    # the same values up to rounding (a batch of evaluations may be vectorized differently): 1 ulp of f
    # over a step of 6e-6 is 4e-11 in a central difference
    for route in ("jacfwd", "jacrev"):
        np.testing.assert_allclose(parts.jacobians[route], whole.jacobians[route], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(parts.jacobians["fd"], whole.jacobians["fd"], rtol=0, atol=1e-10)


def test_a_jacobian_too_big_for_the_budget_is_a_clear_error_or_the_fast_mode():
    x = np.linspace(-1.0, 1.0, 300)  # a 300 x 300 Jacobian: 28 (full) or 12 (fast) arrays of 0.69 MiB

    def jac(x):
        return jnp.diag(1 - jnp.tanh(x) ** 2)

    with pytest.raises(ValueError, match=r"full check of a 300x300 Jacobian needs 19.2 MiB.*budget of 10 MiB.*"
                                         r"mode='fast'"):
        check_jacobian(jnp.tanh, x, jac, mode="full", memory_budget=10 * 2**20)
    res = check_jacobian(jnp.tanh, x, jac, memory_budget=10 * 2**20)
    assert res.mode == "fast" and res.ok, res.report()
    with pytest.raises(ValueError, match=r"fast check of a 300x300 Jacobian needs 8.24 MiB.*budget of 1 MiB"):
        check_jacobian(jnp.tanh, x, jac, memory_budget=2**20)


@pytest.mark.parametrize(("kw", "match"), [({"mode": "quick"}, "mode must be 'auto', 'full' or 'fast'"),
                                           ({"directions": 0}, "directions must be a positive integer")])
def test_bad_settings_are_clear_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        check_jacobian(f3, X3, J3, **kw)
