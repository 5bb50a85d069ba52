"""Training by gradient descent: the slide's loop for one network, compiled whole.

    for each epoch:
        for each minibatch:
            compute the partials (over the examples in the minibatch)
            p <- p - eps * df/dp          for every parameter p

``train = make_train(config, (X, Y))`` is that loop for **one** network, a pure function
``train(key, seed, lr) -> TrainResult`` (PureJaxRL's ``make_train(config) -> train(rng)``) built from a few
named pieces over a :class:`TrainState` (:func:`make_program`): ``init`` starts from the weights
:func:`draw_network` draws for network ``seed`` of the family rooted at ``key``, ``step`` is one minibatch
update, ``epoch`` the minibatches of one reshuffled epoch, ``evaluate`` the loss and accuracy on the whole
training set ("solved": accuracy 1 at the end). The epochs are one ``lax.scan``; ``jax.jit(train)``
compiles the whole run. Many networks -- seeds times a grid of learning rates -- are the caller's
``jax.vmap`` over ``seed`` and ``lr``: :func:`lecture6.runs.make_train_runs`.

Gradients come from ``config.grad``: ``"autodiff"`` (``jax.grad`` of the loss) or ``"hand"``
(Algorithm 6.4, :func:`lecture6.backprop.value_and_backprop`). The optimizers are optax's, with the
learning rate injected per run (``optax.inject_hyperparams``): ``"sgd"`` -- the slide's update --
``"momentum"`` and ``"adam"``. A run whose loss or parameters become non-finite is *diverged*
(``result.diverged``), counted by :func:`lecture6.runs.diverged_report` and left out of
:func:`lecture6.runs.aggregate_history`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lecture6.activations import ACTIVATIONS
from lecture6.backprop import value_and_backprop
from lecture6.losses import LOSSES, get_loss
from lecture6.mlp import INITS, forward, init_std
from lecture6.sharding import DATA

OPTIMIZERS = ("sgd", "momentum", "adam")
GRADS = ("autodiff", "hand")
LAYOUTS = ("auto", "seeds_last", "vmap")
DTYPES = ("float32", "float64")

# ---------------------------------------------------------------------------------------------------
# Config: every field is declared in configs/base_train.py; here each is range-checked, once.
# ---------------------------------------------------------------------------------------------------


def _bad(field: str, value, expected: str) -> ValueError:
    return ValueError(f"config.{field} = {value!r} is invalid: expected {expected}")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(lo: int):
    return lambda v: _is_int(v) and v >= lo, f"an integer >= {lo}"


def _one_of(choices):
    return lambda v: isinstance(v, str) and v in choices, f"one of {sorted(choices)}"


_POSITIVE = (lambda v: _is_real(v) and v > 0, "a finite number > 0")
_RATES = (lambda v: isinstance(v, (tuple, list)) and all(_POSITIVE[0](r) for r in v),
          "a tuple of finite learning rates > 0 (or empty)")

#: field -> (test, what it should be); configs/base_train.py gives every field its value.
CHECKS = {
    "width": _int_at_least(1), "depth": _int_at_least(1), "activation": _one_of(ACTIVATIONS),
    "loss": _one_of(LOSSES), "init": _one_of(INITS), "init_scale": _POSITIVE,
    "bias_init": (_is_real, "a finite number"), "optimizer": _one_of(OPTIMIZERS), "lr": _POSITIVE,
    "lrs": _RATES, "momentum": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "grad": _one_of(GRADS), "epochs": _int_at_least(1), "batch_size": _int_at_least(1),
    "seeds": _int_at_least(1), "seed": (_is_int, "an integer"), "dtype": _one_of(DTYPES),
    "log_every": _int_at_least(1), "layout": _one_of(LAYOUTS),
}


def check_config(config) -> ml_collections.FrozenConfigDict:
    """Range-check every training field; return the config frozen. Raises ``ValueError`` naming the field.

    ``config`` is an ``ml_collections.ConfigDict`` or a mapping holding every field of
    ``configs/base_train.py`` (other fields, such as a script's ``progress_every``, pass through).
    """
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    missing = sorted(set(CHECKS) - set(d))
    if missing:
        raise ValueError(f"config lacks the training field(s) {missing} (configs/base_train.py has them all)")
    for field, (ok, expected) in CHECKS.items():
        if not ok(d[field]):
            raise _bad(field, d[field], expected)
    if d["epochs"] % d["log_every"]:
        raise _bad("log_every", d["log_every"], f"a divisor of config.epochs = {d['epochs']}")
    if d["dtype"] == "float64" and not jax.config.read("jax_enable_x64"):
        raise _bad("dtype", d["dtype"], "float32, or float64 with jax_enable_x64 switched on")
    if not isinstance(d.setdefault("data_parallel", False), bool):  # optional: older configs lack it
        raise _bad("data_parallel", d["data_parallel"], "True or False")
    return ml_collections.FrozenConfigDict(dict(d, lrs=tuple(float(r) for r in d["lrs"])))


def prepare_data(data, config):
    """``(X (n, d), Y (n, n_out))`` as NumPy arrays of ``config.dtype``; integer labels become one-hot.

    ``Y`` is ``(n,)`` / ``(n, n_out)`` targets for ``mse``; one-hot ``(n, K)`` or labels ``(n,)`` for
    ``softmax_ce``. Raises ``ValueError`` for a shape mismatch, a negative label or a non-finite value.
    """
    X, Y = (np.asarray(a) for a in data)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be (n, d) with n >= 1, got shape {X.shape}")
    n = X.shape[0]
    if config.loss == "softmax_ce" and Y.ndim == 1 and np.issubdtype(Y.dtype, np.integer):
        if Y.min() < 0:
            raise ValueError(f"class labels must be >= 0, got min {Y.min()}")
        Y = np.eye(int(Y.max()) + 1)[Y]
    elif Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != n:
        raise ValueError(f"Y must be (n,) or (n, n_out) with n = {n} rows like X, got shape {Y.shape}")
    for name, A in (("X", X), ("Y", Y)):
        if not np.all(np.isfinite(A)):
            raise ValueError(f"{name} contains non-finite values (rows {np.flatnonzero(~np.isfinite(A).all(1))})")
    return X.astype(config.dtype), Y.astype(config.dtype)


def make_optimizer(config) -> optax.GradientTransformation:
    """optax's ``config.optimizer`` with its learning rate held in the state (``optax.inject_hyperparams``).

    The rate given here is a placeholder: :func:`make_train`'s ``init`` writes each run's own rate into
    ``opt_state.hyperparams["learning_rate"]``, so one program runs a whole grid of rates.
    """
    if config.optimizer == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=config.lr)
    if config.optimizer == "momentum":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=config.lr, momentum=config.momentum)
    return optax.inject_hyperparams(optax.adam)(learning_rate=config.lr)


# ---------------------------------------------------------------------------------------------------
# Initial weights
# ---------------------------------------------------------------------------------------------------


def init_params(key, seed, sizes, *, seeds: int, init: str = "he", scale: float = 1.0, bias_init: float = 0.0,
                dtype=jnp.float32) -> list[dict]:
    """Initial params of network ``seed`` (``0 <= seed < seeds``) of the family drawn from ``key``.

    The distribution of :func:`lecture6.mlp.init_mlp` (``init`` and ``scale`` mean the same). Every
    network's weights are row ``seed`` of **one** draw ``jax.random.normal(key, (seeds, P))`` over all
    ``P`` weights: under ``vmap`` over ``seed`` it is a single random-number kernel (several times faster
    to compile than one per layer), and row ``seed`` does not depend on how many seeds there are. A
    ``seed`` outside ``[0, seeds)`` gives NaN weights (flagged as diverged), never another seed's.
    """
    P = n_weights(sizes)
    # drawn flat: the same numbers as shape (seeds, P) (threefry depends on the flat index only), and
    # XLA compiles the one-dimensional draw about twice as fast
    noise = jax.random.normal(key, (seeds * P,), dtype=dtype).reshape(seeds, P)
    return params_from_noise(noise.at[seed].get(mode="fill", fill_value=jnp.nan), sizes, init=init, scale=scale,
                             bias_init=bias_init)


def n_weights(sizes) -> int:
    """How many weights (not biases) a network with layer widths ``sizes`` has."""
    return sum(int(i) * int(o) for i, o in itertools.pairwise(sizes))


def params_from_noise(noise, sizes, *, init: str = "he", scale: float = 1.0, bias_init: float = 0.0) -> list[dict]:
    """MLP params from standard normal ``noise (P,)``: layer by layer, ``W = init_std * noise[...]``."""
    params, start = [], 0
    for i, o in itertools.pairwise(sizes):
        W = init_std(init, i, o, scale) * noise[start:start + o * i].reshape(o, i)
        params.append({"W": W, "b": jnp.full((o,), bias_init, dtype=noise.dtype)})
        start += o * i
    return params


def init_seeds(key, sizes, seeds: int, **kw) -> list[dict]:
    """:func:`init_params` of seeds ``0 .. seeds-1``, every leaf with a leading seed axis: ``W (seeds, o, i)``."""
    return jax.vmap(lambda s: init_params(key, s, sizes, seeds=seeds, **kw))(jnp.arange(seeds))


# ---------------------------------------------------------------------------------------------------
# One network
# ---------------------------------------------------------------------------------------------------


class TrainState(NamedTuple):
    """What the loop carries: the MLP params, the optimizer state, the run's minibatch-order key, and
    whether every loss so far was finite."""

    params: list
    opt_state: Any
    order_key: jax.Array
    finite: jax.Array


class TrainResult(NamedTuple):
    """What ``train(key, seed, lr)`` returns; under ``vmap`` every field gains a leading run axis.

    Attributes:
      params: the final MLP params (``[{"W": (n_out, n_in), "b": (n_out,)}, ...]``).
      loss, accuracy: ``(n_log,)`` history: the mean minibatch loss / accuracy over the epoch that ends
        at ``epochs[j]`` (logged every ``log_every`` epochs).
      epochs: ``(n_log,)`` the epoch numbers of the history (1-based).
      final_loss, final_accuracy: of the final params on the whole training set.
      solved: every output within 0.5 of its target (``mse``) / every example classified right
        (``softmax_ce``), with the final params, and not diverged.
      diverged: a loss or a final parameter was non-finite.
      lr, seed: the run's learning rate and seed index.
    """

    params: list
    loss: jax.Array
    accuracy: jax.Array
    epochs: jax.Array
    final_loss: jax.Array
    final_accuracy: jax.Array
    solved: jax.Array
    diverged: jax.Array
    lr: jax.Array
    seed: jax.Array


class Program(NamedTuple):
    """One network's run in pieces, pure functions a caller may ``vmap`` over runs (:func:`make_program`)."""

    init: Callable  # (params, order_key, lr) -> TrainState
    epochs: Callable  # (state, j) -> (state, (loss, accuracy)): epochs j*log_every+1 .. (j+1)*log_every
    finish: Callable  # (state, loss history, accuracy history, seed, lr) -> TrainResult
    sizes: tuple  # layer widths (d, width, ..., n_out)
    n_log: int  # history entries: epochs // log_every
    steps: int  # minibatch steps per run: epochs * minibatches per epoch
    minibatches: bool  # False: every step is the full batch


def draw_network(key, seed, config, sizes, *, minibatches: bool = True):
    """``(params, order_key)`` of network ``seed`` of the family rooted at ``key``: its initial weights
    (:func:`init_params`) and the key of its minibatch order (both independent of ``config.seeds``).
    Full batch (``minibatches=False``) the order key is not drawn (a third of the compile time saved)."""
    init_key, order_key = jax.random.split(key)
    params = init_params(init_key, seed, sizes, seeds=config.seeds, init=config.init, scale=config.init_scale,
                         bias_init=config.bias_init, dtype=jnp.dtype(config.dtype))
    return params, jax.random.split(order_key, config.seeds)[seed] if minibatches else order_key


def accuracy(out, Y, loss: str):
    """Fraction right: outputs within 0.5 of the targets (``mse``) or argmax match (``softmax_ce``)."""
    if loss == "mse":
        return jnp.mean((jnp.abs(out - Y) < 0.5).astype(out.dtype))
    return jnp.mean((jnp.argmax(out, axis=-1) == jnp.argmax(Y, axis=-1)).astype(out.dtype))


def make_program(config, data, *, sigma: Callable | None = None, mesh=None) -> Program:
    """The pieces of one network's training run (see :func:`make_train`, which chains them).

    ``sigma`` replaces the activation ``config.activation`` (autodiff gradients only). ``mesh``: a
    :class:`jax.sharding.Mesh` with a ``data`` axis over which each minibatch's examples are split (data
    parallel: XLA sums the gradient's per-device parts with an all-reduce); its size must divide the
    minibatch size. Without one, or with a ``data`` axis of size 1, the minibatch stays whole.
    """
    config = check_config(config)
    X, Y = (jnp.asarray(a) for a in prepare_data(data, config))  # closed over: passed to the compiled program
    n, B = X.shape[0], min(config.batch_size, X.shape[0])
    n_batches = n // B  # the last incomplete minibatch is dropped
    split = _minibatch_split(mesh, B)
    sizes = (X.shape[1],) + (config.width,) * config.depth + (Y.shape[1],)
    optimizer = make_optimizer(config)
    loss_fn, _ = get_loss(config.loss)

    def objective(params, Xb, Yb):
        out, _ = forward(params, Xb, activation=sigma or config.activation, output="identity")
        return loss_fn(out, Yb), out

    def gradients(params, Xb, Yb):
        """``(loss, out, df/dp)`` on one minibatch."""
        if config.grad == "hand":
            value, grads = value_and_backprop(params, Xb, Yb, activation=config.activation, loss=config.loss)
            return value, objective(params, Xb, Yb)[1], grads
        (value, out), grads = jax.value_and_grad(objective, has_aux=True)(params, Xb, Yb)
        return value, out, grads

    def init(params, order_key, lr):
        """The state of a network starting from ``params`` at rate ``lr``."""
        opt_state = optimizer.init(params)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, X.dtype)  # this run's own rate
        return TrainState(params, opt_state, order_key, jnp.array(True))

    def step(state, batch):
        """One minibatch: p <- p - lr * df/dp (momentum and Adam transform df/dp first)."""
        Xb, Yb = batch if split is None else jax.lax.with_sharding_constraint(batch, split)
        loss, out, grads = gradients(state.params, Xb, Yb)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = state._replace(params=params, opt_state=opt_state, finite=state.finite & jnp.isfinite(loss))
        return state, (loss, accuracy(out, Yb, config.loss))

    def whole():
        """``(X, Y)``, every training row. They are compile-time constants: the barrier keeps XLA from
        folding what depends on them alone, such as argmax(Y), at compile time (seconds for 4,000 rows)."""
        return jax.lax.optimization_barrier((X, Y))

    def epoch(state, e):
        """Every minibatch of epoch ``e``, in an order drawn for this epoch; its mean loss and accuracy."""
        if B == n:
            return step(state, whole())
        order = jax.random.permutation(jax.random.fold_in(state.order_key, e), n)
        rows = order[: n_batches * B].reshape(n_batches, B)
        state, (loss, acc) = jax.lax.scan(step, state, (X[rows], Y[rows]))
        return state, (jnp.mean(loss), jnp.mean(acc))

    def epochs(state, j):
        """``log_every`` epochs; the last one's mean loss and accuracy are history entry ``j``."""
        state, (loss, acc) = jax.lax.scan(epoch, state, j * config.log_every + jnp.arange(config.log_every))
        return state, (loss[-1], acc[-1])

    def evaluate(params):
        """Loss and accuracy on the whole training set."""
        Xw, Yw = whole()
        value, out = objective(params, Xw, Yw)
        return value, accuracy(out, Yw, config.loss)

    def finish(state, loss, acc, seed, lr):
        final = evaluate(state.params)
        finite = state.finite & all_finite(state.params) & jnp.isfinite(final[0])
        return train_result(state.params, finite, (loss, acc), final, seed, lr, config.log_every)

    return Program(init, epochs, finish, sizes, config.epochs // config.log_every, config.epochs * n_batches, B < n)


def _minibatch_split(mesh, B: int):
    """The sharding of a ``(B, ...)`` minibatch split over ``mesh``'s ``data`` axis, or ``None``."""
    if mesh is None or mesh.shape.get(DATA, 1) == 1:
        return None
    size = mesh.shape[DATA]
    if B % size:
        lower, upper = B - B % size, B - B % size + size
        raise _bad("batch_size", B, f"a multiple of the {size} devices of mesh axis {DATA!r} that each minibatch "
                                    f"is split over (config.data_parallel), e.g. {lower or upper} or {upper}")
    return NamedSharding(mesh, P(DATA))


def make_train(config, data):
    """Build ``train(key, seed, lr) -> TrainResult``: one network's whole training run, a pure function.

    Args:
      config: every training field (:func:`check_config`; ``configs/base_train.py``). ``config.lr``
        and ``config.lrs`` are not read: ``train`` is given its rate.
      data: ``(X (n, d), Y)`` (:func:`prepare_data`).

    ``train(key, seed, lr)`` trains network ``seed`` (an integer in ``[0, config.seeds)``) of the family
    rooted at ``key`` at learning rate ``lr``; ``jax.jit(train)`` compiles it whole, and
    ``jax.vmap(train, in_axes=(None, 0, 0))`` trains many (:func:`lecture6.runs.make_train_runs`).
    """
    config = check_config(config)
    program = make_program(config, data)

    def train(key, seed, lr):
        params, order_key = draw_network(key, seed, config, program.sizes, minibatches=program.minibatches)
        state, (loss, acc) = jax.lax.scan(program.epochs, program.init(params, order_key, lr),
                                          jnp.arange(program.n_log))
        return program.finish(state, loss, acc, seed, lr)

    return train


def train_result(params, finite, history, final, seed, lr, log_every: int) -> TrainResult:
    """A :class:`TrainResult` from the final ``params``, ``finite`` (every loss, the final params and the
    final loss finite), the ``(loss, accuracy)`` history and the final ``(loss, accuracy)``: solved means
    every training example right (accuracy 1) and finite throughout."""
    (loss, acc), (final_loss, final_acc) = history, final
    return TrainResult(params=params, loss=loss, accuracy=acc, epochs=(jnp.arange(loss.shape[-1]) + 1) * log_every,
                       final_loss=final_loss, final_accuracy=final_acc, solved=(final_acc == 1) & finite,
                       diverged=~finite, lr=jnp.asarray(lr, loss.dtype), seed=jnp.asarray(seed))


def all_finite(tree) -> jax.Array:
    """``()`` bool: every entry of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))
