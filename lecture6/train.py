"""Training by gradient descent, compiled whole: every seed, epoch and minibatch in one ``jit``.

The slide's loop::

    for each epoch:
        for each minibatch:
            compute the partials (over the examples in the minibatch)
            p <- p - eps * df/dp          for every parameter p

is :func:`make_train`: ``train = make_train(config, (X, Y))`` returns a pure function of a key, and
``train(key)`` runs ``config.seeds`` independent networks (times ``len(config.lrs)`` learning rates,
when a grid is given) for ``config.epochs`` epochs as **one** compiled program -- a ``lax.scan`` over
logged chunks of epochs, a ``lax.scan`` over epochs, a ``lax.scan`` over minibatches. Minibatches are
reshuffled every epoch from each seed's own key; with ``batch_size >= n`` every step is the full batch.

Two layouts run the seeds side by side, chosen by ``config.layout`` (``"auto"`` picks):

* ``"vmap"``: params as the MLP pytree of :mod:`lecture6.mlp`, one network per seed, the step of one
  seed written with :func:`lecture6.mlp.forward` / :func:`lecture6.backprop.value_and_backprop` and
  ``jax.vmap``-ed over seeds (optionally over blocks of ``config.seed_block`` seeds with ``lax.map``,
  which keeps a very wide batch in cache on CPU). Works for any network and data size.
* ``"seeds_last"``: every parameter carries a trailing seed axis, ``W (n_out, n_in, S)``,
  ``b (n_out, S)``, and the forward and backward passes are written as elementwise products summed
  over the (tiny) layer axes. For small networks on little data (XOR) this is far faster than
  ``vmap``-ing matrix products of 2x2 matrices: the whole step is a handful of fused loops over the
  seed axis. ``"auto"`` uses it for full-batch training when the forward pass has at most 64
  products (examples x weights): XOR with up to 5 hidden units (wider nets compile slowly this way).

Gradients come from ``config.grad``: ``"autodiff"`` (``jax.grad`` of the loss) or ``"hand"``
(Algorithm 6.4: :func:`lecture6.backprop.value_and_backprop` in the vmap layout, the same recursion
written over the seed axis in the seeds-last one). The optimizers are optax's: ``"sgd"`` -- the
slide's ``p <- p - eps grad`` -- ``"momentum"`` and ``"adam"``.

A seed whose loss becomes non-finite is *diverged*: it is flagged per seed (``result.diverged``),
counted by :func:`diverged_report`, and left out of every aggregate (:func:`aggregate_history`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lecture6.activations import ACTIVATIONS, get_activation
from lecture6.backprop import value_and_backprop
from lecture6.losses import LOSSES, get_loss
from lecture6.mlp import INITS, forward, init_std

OPTIMIZERS = ("sgd", "momentum", "adam")
GRADS = ("autodiff", "hand")
LAYOUTS = ("auto", "seeds_last", "vmap")
DTYPES = ("float32", "float64")

#: Every field a training config has, with its default. Configs in ``configs/`` override these.
DEFAULTS = {
    "width": 2,  # hidden units per hidden layer
    "depth": 1,  # hidden layers (1: the lecture's 3-layer network)
    "activation": "relu",
    "loss": "mse",  # "mse" (identity output) or "softmax_ce" (the output layer gives logits)
    "init": "he",
    "init_scale": 1.0,
    "bias_init": 0.0,
    "optimizer": "sgd",
    "lr": 0.1,
    "lrs": (),  # a grid of learning rates run side by side; empty: just ``lr``
    "momentum": 0.9,  # for optimizer="momentum"
    "epochs": 2000,
    "batch_size": 4,  # >= n: full batch
    "seeds": 1000,
    "grad": "autodiff",
    "seed": 0,
    "dtype": "float32",
    "log_every": 10,  # record the history every this many epochs
    "layout": "auto",
    "seed_block": 0,  # vmap layout: lax.map over blocks of this many seeds (0: one block)
}

# The seeds-last step unrolls every product of the forward pass (batch x weights of them); above
# this many the program compiles slowly and the vmap layout is the better choice.
_SEEDS_LAST_MAX_TERMS = 64


# ---------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------


class Spec(NamedTuple):
    """A validated training config (plain Python values, hashable)."""

    width: int
    depth: int
    activation: str
    loss: str
    init: str
    init_scale: float
    bias_init: float
    optimizer: str
    lr: float
    lrs: tuple
    momentum: float
    epochs: int
    batch_size: int
    seeds: int
    grad: str
    seed: int
    dtype: str
    log_every: int
    layout: str
    seed_block: int


def _bad(field: str, value, expected: str) -> ValueError:
    return ValueError(f"config.{field} = {value!r} is invalid: expected {expected}")


def _int(cfg: dict, field: str, lo: int) -> int:
    v = cfg[field]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise _bad(field, v, f"an integer >= {lo}")
    return int(v)


def _pos_float(cfg: dict, field: str) -> float:
    v = cfg[field]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise _bad(field, v, "a finite number > 0")
    return float(v)


def _choice(cfg: dict, field: str, choices) -> str:
    v = cfg[field]
    if v not in choices:
        raise _bad(field, v, f"one of {sorted(choices)}")
    return v


def validate_config(config, *, extra: tuple[str, ...] = ()) -> Spec:
    """Check a training config and return it as a :class:`Spec`; raise ``ValueError`` naming the field.

    ``config`` is an ``ml_collections.ConfigDict`` or a mapping; missing fields take :data:`DEFAULTS`.
    Fields not in :data:`DEFAULTS` are errors unless named in ``extra`` (script-level fields).
    """
    given = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    unknown = sorted(set(given) - set(DEFAULTS) - set(extra))
    if unknown:
        raise ValueError(
            f"unknown config field(s) {unknown}; known fields are {sorted(set(DEFAULTS) | set(extra))}"
        )
    cfg = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    lrs = cfg["lrs"]
    if isinstance(lrs, (int, float)) and not isinstance(lrs, bool):
        lrs = (lrs,)
    if not isinstance(lrs, (tuple, list)):
        raise _bad("lrs", lrs, "a tuple of learning rates (or empty)")
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
            raise _bad("lrs", cfg["lrs"], "learning rates that are finite numbers > 0")
    mom = cfg["momentum"]
    if isinstance(mom, bool) or not isinstance(mom, (int, float)) or not 0.0 <= mom < 1.0:
        raise _bad("momentum", mom, "a number in [0, 1)")
    bias = cfg["bias_init"]
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise _bad("bias_init", bias, "a finite number")
    seed = cfg["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise _bad("seed", seed, "an integer")
    spec = Spec(
        width=_int(cfg, "width", 1),
        depth=_int(cfg, "depth", 1),
        activation=_choice(cfg, "activation", ACTIVATIONS),
        loss=_choice(cfg, "loss", LOSSES),
        init=_choice(cfg, "init", INITS),
        init_scale=_pos_float(cfg, "init_scale"),
        bias_init=float(bias),
        optimizer=_choice(cfg, "optimizer", OPTIMIZERS),
        lr=_pos_float(cfg, "lr"),
        lrs=tuple(float(v) for v in lrs),
        momentum=float(mom),
        epochs=_int(cfg, "epochs", 1),
        batch_size=_int(cfg, "batch_size", 1),
        seeds=_int(cfg, "seeds", 1),
        grad=_choice(cfg, "grad", GRADS),
        seed=int(seed),
        dtype=_choice(cfg, "dtype", DTYPES),
        log_every=_int(cfg, "log_every", 1),
        layout=_choice(cfg, "layout", LAYOUTS),
        seed_block=_int(cfg, "seed_block", 0),
    )
    if spec.epochs % spec.log_every:
        raise _bad("log_every", spec.log_every, f"a divisor of config.epochs = {spec.epochs}")
    if spec.dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise _bad("dtype", spec.dtype, "float32, or float64 with jax_enable_x64 switched on")
    return spec


def make_optimizer(spec: Spec) -> optax.GradientTransformation:
    """The optax transformation for ``spec.optimizer`` with **unit** learning rate.

    The learning rate multiplies the updates afterwards (one per run, so a grid of learning rates runs
    in one program): for SGD, momentum and Adam the rate is a final scaling of the update, so
    ``p + lr * update(lr=1)`` is exactly ``p + update(lr)``.
    """
    if spec.optimizer == "sgd":
        return optax.sgd(1.0)
    if spec.optimizer == "momentum":
        return optax.sgd(1.0, momentum=spec.momentum)
    return optax.adam(1.0)


# ---------------------------------------------------------------------------------------------------
# The seeds-last layout: forward, loss and backward with a trailing seed axis
# ---------------------------------------------------------------------------------------------------


def _sum(terms):
    """``terms[0] + terms[1] + ...``: unrolled sums fuse into one loop over the seed axis."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def to_seeds_last(params):
    """MLP params with a leading seed axis (``W (S, o, i)``) -> the seeds-last layout.

    Every scalar parameter becomes its own vector over the seeds -- the slide's ``w1, ..., b3``, each
    ``(S,)``: a layer is ``{"W": [[W_oi (S,) for i] for o], "b": [b_o (S,) for o]}``.
    """
    return [{"W": [[la["W"][:, o, i] for i in range(la["W"].shape[2])] for o in range(la["W"].shape[1])],
             "b": [la["b"][:, o] for o in range(la["b"].shape[1])]} for la in params]


def from_seeds_last(params):
    """Inverse of :func:`to_seeds_last`: leaves ``W (S, o, i)``, ``b (S, o)``."""
    return [{"W": jnp.stack([jnp.stack(row, axis=-1) for row in la["W"]], axis=1),
             "b": jnp.stack(la["b"], axis=-1)} for la in params]


def seeds_last_rows(A):
    """Rows of a batch in the seeds-last layout: ``A (B, d)`` -> ``[[A[r, i] for i] for r]``.

    An entry is ``()`` (the same example for every seed) or, for ``A (B, d, S)``, ``(S,)``.
    """
    return [[A[r, i] for i in range(A.shape[1])] for r in range(A.shape[0])]


def forward_seeds_last(params, X, *, activation: str = "relu"):
    """Forward propagation of S networks at once in the seeds-last layout; the output layer is linear.

    Every quantity of the slide's graph is a vector over the seeds, one per example and unit, so the
    pass is the slide's scalar formula ``z = w1 x1 + w2 x2 + b1`` evaluated for all seeds at once.

    Args:
      params: seeds-last layers (:func:`to_seeds_last`): ``W[o][i]`` and ``b[o]`` each ``(S,)``.
      X: rows (:func:`seeds_last_rows`): ``X[r][i]`` is ``()`` or ``(S,)``.

    Returns:
      ``(yhat, cache)``: ``yhat[r][o]`` ``(S,)``; ``cache = {"z": [z1, ...], "h": [X, h1, ...]}`` as in
      :func:`lecture6.mlp.forward`, every entry indexed ``[r][unit]``.
    """
    sigma, _ = get_activation(activation)
    H = X
    zs, hs = [], [H]
    for k, layer in enumerate(params):
        Z = [[_sum([Wo[i] * h[i] for i in range(len(h))]) + bo for Wo, bo in zip(layer["W"], layer["b"])]
             for h in H]
        zs.append(Z)
        if k < len(params) - 1:
            H = [[sigma(z) for z in zr] for zr in Z]
            hs.append(H)
    return zs[-1], {"z": zs, "h": hs}


def loss_seeds_last(out, Y, loss: str):
    """Per-seed loss ``(S,)`` and its gradient ``[r][o]`` with respect to the outputs ``out[r][o] (S,)``.

    ``Y[r][o]`` is ``()`` or ``(S,)``. ``"mse"``: ``1/(2B) sum ||yhat - y||^2`` with gradient
    ``(yhat - y)/B``; ``"softmax_ce"``: ``out`` are logits, ``-1/B sum y log softmax`` with gradient
    ``(softmax - y)/B`` -- the losses of :mod:`lecture6.losses`, one value per seed.
    """
    B = len(out)
    if loss == "mse":
        e = [[o - y for o, y in zip(orow, yrow)] for orow, yrow in zip(out, Y)]
        return _sum([r * r for er in e for r in er]) / (2 * B), [[r / B for r in er] for er in e]
    value, grad = [], []
    for orow, yrow in zip(out, Y):
        m = jax.lax.stop_gradient(functools.reduce(jnp.maximum, orow))
        zs = [o - m for o in orow]
        lse = jnp.log(_sum([jnp.exp(z) for z in zs]))
        logp = [z - lse for z in zs]
        value.append(_sum([-y * lp for y, lp in zip(yrow, logp)]))
        grad.append([(jnp.exp(lp) - y) / B for lp, y in zip(logp, yrow)])
    return _sum(value) / B, grad


def backprop_seeds_last(params, X, Y, *, activation: str = "relu", loss: str = "mse"):
    """Algorithm 6.4 for S networks at once (seeds-last layout); returns ``(loss (S,), out, grads)``.

    The recursion of :func:`lecture6.backprop.backprop` written per example and unit, elementwise over
    the seeds: ``g <- g (.) f'(z^(k))``, ``grad W_oi = sum_r g_ro h_ri``, ``grad b_o = sum_r g_ro``,
    ``g_ri <- sum_o W_oi g_ro``. ``X``, ``Y`` as in :func:`forward_seeds_last` / :func:`loss_seeds_last`.
    """
    _, sigma_grad = get_activation(activation)
    out, cache = forward_seeds_last(params, X, activation=activation)
    value, g = loss_seeds_last(out, Y, loss)
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        if k < len(params) - 1:
            g = [[gj * sigma_grad(zj) for gj, zj in zip(gr, zr)] for gr, zr in zip(g, cache["z"][k])]
        H = cache["h"][k]
        n_out, n_in = len(params[k]["W"]), len(params[k]["W"][0])
        grads[k] = {
            "W": [[_sum([g[r][o] * H[r][i] for r in range(len(H))]) for i in range(n_in)]
                  for o in range(n_out)],
            "b": [_sum([g[r][o] for r in range(len(H))]) for o in range(n_out)],
        }
        if k > 0:
            W = params[k]["W"]
            g = [[_sum([W[o][i] * gr[o] for o in range(n_out)]) for i in range(n_in)] for gr in g]
    return value, out, grads


# ---------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------


def init_seeds(key, sizes, seeds: int, *, init: str = "he", scale: float = 1.0, bias_init: float = 0.0,
               dtype=jnp.float32) -> list[dict]:
    """Initial params of ``seeds`` networks, every leaf with a leading seed axis: ``W (seeds, o, i)``.

    The distribution of :func:`lecture6.mlp.init_mlp` (``init`` and ``scale`` mean the same), drawn
    with **one** ``jax.random.normal`` call for all seeds and layers: a single random-number kernel
    compiles several times faster than one per layer and seed. Seed ``i`` gets row ``i`` of the draw,
    which does not depend on how many seeds there are.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {list(INITS)}")
    shapes = [(int(o), int(i)) for i, o in itertools.pairwise(sizes)]
    counts = [o * i for o, i in shapes]
    noise = jax.random.normal(key, (seeds, sum(counts)), dtype=dtype)
    params, start = [], 0
    for (o, i), c in zip(shapes, counts):
        W = init_std(init, i, o, scale) * noise[:, start:start + c].reshape(seeds, o, i)
        params.append({"W": W, "b": jnp.full((seeds, o), bias_init, dtype=dtype)})
        start += c
    return params


class TrainResult(NamedTuple):
    """What ``train(key)`` returns; ``R = len(lrs) * seeds`` runs, run ``r`` has ``lr[r]`` and ``seed[r]``.

    Attributes:
      params: the final MLP params, every leaf with a leading run axis: ``W (R, n_out, n_in)``.
      loss, accuracy: ``(R, n_log)`` history, the mean minibatch loss / accuracy over the epoch that
        ends at ``epochs[j]`` (logged every ``log_every`` epochs).
      epochs: ``(n_log,)`` the epoch numbers of the history (1-based).
      final_loss, final_accuracy: ``(R,)`` of the final params on the whole training set.
      solved: ``(R,)`` every output within 0.5 of its target (``mse``) / every example classified
        right (``softmax_ce``), with the final params.
      diverged: ``(R,)`` a loss or a final parameter was non-finite.
      lr: ``(R,)`` learning rate of each run; seed: ``(R,)`` seed index (0..seeds-1) of each run.
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


def _prepare_data(data, spec: Spec):
    X, Y = data
    X = np.asarray(X)
    Y = np.asarray(Y)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be (n, d) with n >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values")
    n = X.shape[0]
    if spec.loss == "softmax_ce" and Y.ndim == 1 and np.issubdtype(Y.dtype, np.integer):
        if Y.min() < 0:
            raise ValueError(f"class labels must be >= 0, got min {Y.min()}")
        Y = np.eye(int(Y.max()) + 1)[Y]
    elif Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != n:
        raise ValueError(f"Y must be (n,) or (n, n_out) with n = {n} rows like X, got shape {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("Y contains non-finite values")
    dtype = jnp.dtype(spec.dtype)
    return np.asarray(X, dtype=dtype), np.asarray(Y, dtype=dtype)


def _accuracy(out, Y, loss: str):
    """One run's fraction right: outputs within 0.5 of the targets (mse) or argmax match (softmax_ce)."""
    if loss == "mse":
        return jnp.mean((jnp.abs(out - Y) < 0.5).astype(out.dtype))
    return jnp.mean((jnp.argmax(out, axis=-1) == jnp.argmax(Y, axis=-1)).astype(out.dtype))


def _argmax_list(values):
    """Index of the largest entry of a list of arrays (the first on ties, like ``jnp.argmax``)."""
    best, idx = values[0], jnp.zeros(jnp.broadcast_shapes(*(jnp.shape(v) for v in values)), jnp.int32)
    for k, v in enumerate(values[1:], start=1):
        idx = jnp.where(v > best, k, idx)
        best = jnp.maximum(best, v)
    return idx


def _accuracy_seeds_last(out, Y, loss: str):
    """:func:`_accuracy` for every seed, from ``out[r][o] (S,)`` and targets ``Y[r][o]``."""
    if loss == "mse":
        hits = [(jnp.abs(o - y) < 0.5).astype(o.dtype) for orow, yrow in zip(out, Y)
                for o, y in zip(orow, yrow)]
        return _sum(hits) / len(hits)
    hits = [(_argmax_list(orow) == _argmax_list(yrow)).astype(orow[0].dtype)
            for orow, yrow in zip(out, Y)]
    return _sum(hits) / len(hits)


class Train:
    """``train(key) -> TrainResult``: the whole run, compiled once (see :func:`make_train`)."""

    def __init__(self, spec: Spec, X, Y, progress, progress_every):
        self.spec = spec
        self.n, self.d = X.shape
        self.n_out = Y.shape[1]
        self.sizes = (self.d,) + (spec.width,) * spec.depth + (self.n_out,)
        self.batch = min(spec.batch_size, self.n)
        self.n_batches = self.n // self.batch  # the last incomplete minibatch is dropped
        self.full_batch = self.batch == self.n
        lrs = spec.lrs or (spec.lr,)
        self.runs = len(lrs) * spec.seeds
        self.layout = self._pick_layout()
        if self.layout == "vmap" and spec.seed_block and self.runs % spec.seed_block:
            raise _bad("seed_block", spec.seed_block,
                       f"a divisor of the number of runs {self.runs} (seeds x learning rates), or 0")
        self._X, self._Y = X, Y
        self._lr = np.repeat(np.asarray(lrs, dtype=X.dtype), spec.seeds)
        self._progress = progress
        self._progress_every = progress_every
        self.n_traces = 0  # times the training step has been traced (a retrace check)
        self._jitted = jax.jit(self._train)
        self._compiled = None

    def _pick_layout(self) -> str:
        s = self.spec
        if s.layout != "auto":
            return s.layout
        terms = self.batch * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))
        return "seeds_last" if self.full_batch and terms <= _SEEDS_LAST_MAX_TERMS else "vmap"

    # -- public -------------------------------------------------------------------------------------

    def __call__(self, key) -> TrainResult:
        if self._compiled is not None:
            return self._compiled(key, self._X, self._Y, self._lr)
        return self._jitted(key, self._X, self._Y, self._lr)

    def compile(self, key) -> float:
        """Compile ahead of time for keys like ``key``; later calls reuse it. Returns the seconds taken."""
        import time

        t0 = time.perf_counter()
        self._compiled = self._jitted.lower(key, self._X, self._Y, self._lr).compile()
        return time.perf_counter() - t0

    # -- the program --------------------------------------------------------------------------------

    def _init(self, key):
        """Initial params of every seed, leading seed axis (see :func:`init_seeds`)."""
        s = self.spec
        return init_seeds(key, self.sizes, s.seeds, init=s.init, scale=s.init_scale,
                          bias_init=s.bias_init, dtype=jnp.dtype(s.dtype))

    def _objective(self, params, Xb, Yb):
        out, _ = forward(params, Xb, activation=self.spec.activation, output="identity")
        loss_fn, _ = get_loss(self.spec.loss)
        return loss_fn(out, Yb), out

    def _grads_one(self, params, Xb, Yb):
        """One seed, vmap layout: ``(loss, out, grads)``."""
        s = self.spec
        if s.grad == "hand":
            value, grads = value_and_backprop(params, Xb, Yb, activation=s.activation, loss=s.loss)
            out, _ = forward(params, Xb, activation=s.activation, output="identity")
            return value, out, grads
        (value, out), grads = jax.value_and_grad(self._objective, has_aux=True)(params, Xb, Yb)
        return value, out, grads

    def _grads_seeds_last(self, params, Xb, Yb):
        """All seeds, seeds-last layout: ``(loss (S,), out, grads)``."""
        s = self.spec
        if s.grad == "hand":
            return backprop_seeds_last(params, Xb, Yb, activation=s.activation, loss=s.loss)

        def total(p):
            out, _ = forward_seeds_last(p, Xb, activation=s.activation)
            value, _ = loss_seeds_last(out, Yb, s.loss)
            # The seeds are independent, so the gradient of the sum is every seed's own gradient.
            return jnp.sum(value), (value, out)

        (_, (value, out)), grads = jax.value_and_grad(total, has_aux=True)(params)
        return value, out, grads

    def _train(self, key, X, Y, lr):
        self.n_traces += 1
        s = self.spec
        R, B, nb = self.runs, self.batch, self.n_batches
        opt = make_optimizer(s)
        k_init, k_shuffle = jax.random.split(key)
        # Run r = (learning rate r // seeds, seed r % seeds): every learning rate sees the same seeds.
        seed_idx = jnp.tile(jnp.arange(s.seeds), R // s.seeds)
        shuffle_keys = jax.random.split(k_shuffle, s.seeds)[seed_idx]
        params0 = jax.tree.map(lambda a: a[seed_idx], self._init(k_init))  # leading run axis

        def batches(skey, epoch):
            """Minibatch row indices ``(nb, B)`` of one run for one epoch."""
            perm = jax.random.permutation(jax.random.fold_in(skey, epoch), self.n)
            return perm[: nb * B].reshape(nb, B)

        if self.layout == "vmap":
            def step_one(carry, batch, lr_r):
                params, opt_state, finite = carry
                Xb, Yb = batch
                value, out, grads = self._grads_one(params, Xb, Yb)
                updates, opt_state = opt.update(grads, opt_state, params)
                params = optax.apply_updates(params, jax.tree.map(lambda u: lr_r * u, updates))
                acc = _accuracy(out, Yb, s.loss)
                return (params, opt_state, finite & jnp.isfinite(value)), (value, acc)

            def epoch_one(carry, skey, lr_r, epoch):
                step = lambda c, b: step_one(c, b, lr_r)
                if self.full_batch:
                    carry, (value, acc) = step(carry, (X, Y))
                    return carry, (value, acc)
                idx = batches(skey, epoch)
                carry, (values, accs) = jax.lax.scan(step, carry, (X[idx], Y[idx]))
                return carry, (jnp.mean(values), jnp.mean(accs))

            def chunk_runs(carry, skeys, lrs, epoch0):
                """``log_every`` epochs for a batch of runs (vmapped over runs)."""
                def body(c, e):
                    return jax.vmap(epoch_one, in_axes=(0, 0, 0, None))(c, skeys, lrs, e)
                carry, (values, accs) = jax.lax.scan(body, carry, epoch0 + jnp.arange(s.log_every))
                return carry, (values[-1], accs[-1])

            opt_state0 = jax.vmap(opt.init)(params0)
            if s.seed_block and s.seed_block < R:
                nblk = R // s.seed_block

                def blocked(a):
                    return a.reshape((nblk, s.seed_block) + a.shape[1:])

                def chunk(carry, epoch0):
                    args = jax.tree.map(blocked, (carry, shuffle_keys, lr))
                    out = jax.lax.map(lambda a: chunk_runs(*a, epoch0), args)
                    return jax.tree.map(lambda a: a.reshape((R,) + a.shape[2:]), out)
            else:
                def chunk(carry, epoch0):
                    return chunk_runs(carry, shuffle_keys, lr, epoch0)

            carry0 = (params0, opt_state0, jnp.ones((R,), bool))
            to_params = lambda p: p
        else:
            def step_all(carry, batch):
                params, opt_state, finite = carry
                Xb, Yb = batch
                value, out, grads = self._grads_seeds_last(params, Xb, Yb)
                updates, opt_state = opt.update(grads, opt_state, params)
                # every leaf is (R,): one learning rate per run
                params = optax.apply_updates(params, jax.tree.map(lambda u: lr * u, updates))
                acc = _accuracy_seeds_last(out, Yb, s.loss)
                return (params, opt_state, finite & jnp.isfinite(value)), (value, acc)

            def rows(A, idx):
                """``A[idx]`` as seeds-last rows ``[r][i]``, each ``(nb, R)`` (one batch per run)."""
                return seeds_last_rows(jnp.moveaxis(A[idx], 0, -1).transpose(1, 2, 0, 3))

            def epoch_all(carry, epoch):
                if self.full_batch:
                    return step_all(carry, (seeds_last_rows(X), seeds_last_rows(Y)))
                idx = jax.vmap(batches, in_axes=(0, None))(shuffle_keys, epoch)  # (R, nb, B)
                carry, (values, accs) = jax.lax.scan(step_all, carry, (rows(X, idx), rows(Y, idx)))
                return carry, (jnp.mean(values, axis=0), jnp.mean(accs, axis=0))

            def chunk(carry, epoch0):
                carry, (values, accs) = jax.lax.scan(epoch_all, carry, epoch0 + jnp.arange(s.log_every))
                return carry, (values[-1], accs[-1])

            pl0 = to_seeds_last(params0)
            carry0 = (pl0, opt.init(pl0), jnp.ones((R,), bool))
            to_params = from_seeds_last

        n_log = s.epochs // s.log_every

        def logged(carry, j):
            carry, (value, acc) = chunk(carry, j * s.log_every)
            if self._progress is not None:
                self._report(j, carry[2], value, acc)
            return carry, (value, acc)

        carry, (loss_hist, acc_hist) = jax.lax.scan(logged, carry0, jnp.arange(n_log))
        if self.layout == "vmap":
            final_loss, final_acc, solved = jax.vmap(self._evaluate, in_axes=(0, None, None))(
                carry[0], X, Y)
        else:
            final_loss, final_acc, solved = self._evaluate_seeds_last(carry[0], X, Y)
        params = to_params(carry[0])
        finite_params = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a), axis=tuple(range(1, a.ndim)))
                                           for a in jax.tree.leaves(params)]), axis=0)
        diverged = ~(carry[2] & finite_params & jnp.isfinite(final_loss))
        return TrainResult(
            params=params, loss=loss_hist.T, accuracy=acc_hist.T,
            epochs=(jnp.arange(n_log) + 1) * s.log_every,
            final_loss=final_loss, final_accuracy=final_acc, solved=solved & ~diverged,
            diverged=diverged, lr=lr, seed=seed_idx,
        )

    def _evaluate(self, params, X, Y):
        """One run's final loss, accuracy and solved flag on the whole training set (library forward)."""
        value, out = self._objective(params, X, Y)
        if self.spec.loss == "mse":
            solved = jnp.all(jnp.abs(out - Y) < 0.5)
        else:
            solved = jnp.all(jnp.argmax(out, axis=-1) == jnp.argmax(Y, axis=-1))
        return value, _accuracy(out, Y, self.spec.loss), solved

    def _evaluate_seeds_last(self, params, X, Y):
        """:meth:`_evaluate` for all runs at once in the seeds-last layout."""
        s = self.spec
        Yr = seeds_last_rows(Y)
        out, _ = forward_seeds_last(params, seeds_last_rows(X), activation=s.activation)
        value, _ = loss_seeds_last(out, Yr, s.loss)
        acc = _accuracy_seeds_last(out, Yr, s.loss)
        if s.loss == "mse":
            solved = functools.reduce(jnp.logical_and, [jnp.abs(o - y) < 0.5 for orow, yrow in zip(out, Yr)
                                                         for o, y in zip(orow, yrow)])
        else:
            solved = acc == 1.0
        return value, acc, solved

    def _report(self, j, finite, value, acc):
        """Send a progress line to the host every ``progress_every`` epochs (and at the end)."""
        s = self.spec
        n_log = s.epochs // s.log_every
        every = max(1, self._progress_every // s.log_every) if self._progress_every else n_log
        ok = finite & jnp.isfinite(value)
        n_ok = jnp.sum(ok)
        mean_loss = jnp.sum(jnp.where(ok, value, 0.0)) / jnp.maximum(n_ok, 1)
        solved = jnp.mean(jnp.where(ok, acc == 1.0, False).astype(value.dtype))
        mean_acc = jnp.sum(jnp.where(ok, acc, 0.0)) / jnp.maximum(n_ok, 1)
        progress = self._progress

        def send(epoch, mean_loss, n_ok, solved, mean_acc):
            progress(int(epoch), float(mean_loss), int(n_ok), float(solved), float(mean_acc))

        jax.lax.cond(
            ((j + 1) % every == 0) | (j + 1 == n_log),
            lambda: jax.debug.callback(send, (j + 1) * s.log_every, mean_loss, n_ok, solved, mean_acc),
            lambda: None,
        )


def make_train(config, data, *, progress: Callable | None = None, progress_every: int = 0) -> Train:
    """Build ``train(key) -> TrainResult``, the whole training run as one compiled program.

    Args:
      config: a training config (``ml_collections.ConfigDict`` or mapping; fields in :data:`DEFAULTS`).
      data: ``(X (n, d), Y)`` with ``Y`` ``(n,)`` / ``(n, n_out)`` targets for ``mse``, one-hot
        ``(n, K)`` or integer labels ``(n,)`` for ``softmax_ce``.
      progress: optional host function
        ``progress(epoch, mean_loss, n_finite, solved_fraction, mean_accuracy)``,
        called from inside the compiled run every ``progress_every`` epochs (aggregates over runs).

    The returned :class:`Train` is called with a ``jax.random.key``; calls with keys of the same kind
    reuse the compiled program (``train.n_traces`` stays 1). ``train.compile(key)`` compiles ahead of
    time and returns the seconds it took.
    """
    spec = validate_config(config)
    X, Y = _prepare_data(data, spec)
    return Train(spec, X, Y, progress, progress_every)


# ---------------------------------------------------------------------------------------------------
# Host-side summaries
# ---------------------------------------------------------------------------------------------------


class TrainingDiverged(RuntimeError):
    """Every run of a training program diverged (its loss or parameters became non-finite)."""


def diverged_report(result: TrainResult) -> dict:
    """``{"count": int, "runs": [run indices], "seeds": [seed indices]}`` of the diverged runs."""
    div = np.asarray(result.diverged)
    runs = np.flatnonzero(div)
    return {"count": int(div.sum()), "runs": runs.tolist(),
            "seeds": sorted(set(np.asarray(result.seed)[runs].tolist()))}


def aggregate_history(result: TrainResult, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9)) -> list[dict]:
    """Per logged epoch, loss quantiles and mean accuracy over the runs that did **not** diverge.

    Returns one dict per logged epoch: ``epoch``, ``loss_q10 ... loss_q90`` (``loss_median`` for 0.5),
    ``loss_mean``, ``accuracy_mean``, ``solved_fraction`` (accuracy 1 in that epoch) and ``runs``
    (how many runs the aggregates are over). All ``None`` when every run diverged.
    """
    ok = ~np.asarray(result.diverged)
    loss = np.asarray(result.loss, dtype=np.float64)[ok]
    acc = np.asarray(result.accuracy, dtype=np.float64)[ok]
    rows = []
    qs = np.quantile(loss, quantiles, axis=0) if ok.any() else None
    for j, epoch in enumerate(np.asarray(result.epochs).tolist()):
        row = {"epoch": int(epoch), "runs": int(ok.sum())}
        for i, q in enumerate(quantiles):
            name = "loss_median" if q == 0.5 else f"loss_q{round(q * 100):02d}"
            row[name] = float(qs[i, j]) if qs is not None else None
        row["loss_mean"] = float(loss[:, j].mean()) if ok.any() else None
        row["accuracy_mean"] = float(acc[:, j].mean()) if ok.any() else None
        row["solved_fraction"] = float((acc[:, j] == 1.0).mean()) if ok.any() else None
        rows.append(row)
    return rows
