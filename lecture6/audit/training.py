"""Audit rows for "Training neural networks": gradient descent on XOR, run from many seeds at once.

The XOR row checks the figures the README quotes (:data:`QUOTED`) against 95% Wilson intervals of what
the training code measures here; the linear row checks the trained networks against the affine
least-squares optimum 1/8 written here. The one call into :mod:`lecture6.train` is :func:`_run`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from lecture6.audit import Check, claim, sized
from lecture6.audit._ref import wilson
from lecture6.data import xor
from lecture6.runs import make_train_runs
from lecture6.xor import collapsed_pairs

ORDER = 50

_S_GD = "Gradient descent: XOR problem"
_S_LIN = "Crucial role of non-linearity"

#: Seeds per row: one compiled run of 1,000 seeds takes a second or two; quick mode runs fewer.
_SEEDS = 1000
_QUICK_SEEDS = 200
_BASE = {"width": 2, "depth": 1, "activation": "relu", "loss": "mse", "init": "he", "init_scale": 1.0,
         "bias_init": 0.0, "optimizer": "sgd", "lr": 0.1, "lrs": (), "momentum": 0.9, "grad": "autodiff",
         "epochs": 2000, "batch_size": 4, "seed": 0, "log_every": 100, "dtype": "float32", "layout": "auto"}


def make_train(config: dict, data):
    """Every seed of ``config`` as one compiled program: ``train(key) -> TrainResult`` (leading seed axis)."""
    runs = make_train_runs(config, data)
    return lambda key: runs.train(key, runs.seed, runs.lr)

#: The figures README.md quotes for the 2-2-1 ReLU network above (1000s of seeds, He init, lr 0.1,
#: 2000 epochs of full-batch SGD): the fraction of seeds that solve XOR (the xor_study table, width 2,
#: relu: 0.2378 of 10,000 seeds), and, of the solved nets, the fractions whose W1, b1, ReLU map the two
#: negative points (0,0), (1,1) -- or the two positive points (0,1), (1,0) -- onto one hidden point
#: ("47% collapse the negative pair, 16% the positive pair"; exact counts: benchmarks/record_xor.py).
QUOTED = {"solve rate": 0.2378, "negative pair collapsed": 0.47, "positive pair collapsed": 0.16}
#: Confidence level of the Wilson intervals the quoted figures must fall in.
CONFIDENCE = 0.95


class _Runs(NamedTuple):
    """What the rows read from a training run, one entry per seed, as NumPy arrays."""

    W1: np.ndarray  # (S, n_hidden, 2) the trained first layer
    b1: np.ndarray  # (S, n_hidden)
    solved: np.ndarray  # (S,) all four outputs within 0.5 of their targets
    diverged: np.ndarray  # (S,) a non-finite loss or parameter
    final_loss: np.ndarray  # (S,) f_MSE on the four points, float64


# Compiled trainers by (make_train, config): a rerun of a row reuses its compiled program. Keyed on the
# make_train function itself too, so a replaced make_train (a test breaking it) is always called.
_TRAINERS: dict = {}


def _trainer_key(make_train_fn, config: dict) -> tuple:
    return make_train_fn, tuple(sorted(config.items()))


def _run(seeds: int, **overrides) -> _Runs:
    """``seeds`` networks trained on XOR from ``jax.random.key(0)`` with ``_BASE`` updated by ``overrides``."""
    config = dict(_BASE, seeds=seeds, **overrides)
    cache_key = _trainer_key(make_train, config)
    if cache_key not in _TRAINERS:
        _TRAINERS[cache_key] = make_train(config, xor())
    res = jax.block_until_ready(_TRAINERS[cache_key](jax.random.key(0)))
    return _Runs(W1=np.asarray(res.params[0]["W"], np.float64), b1=np.asarray(res.params[0]["b"], np.float64),
                 solved=np.asarray(res.solved, bool), diverged=np.asarray(res.diverged, bool),
                 final_loss=np.asarray(res.final_loss, np.float64))


def _in_interval(name: str, k: int, n: int) -> tuple[bool, str]:
    low, high = wilson(k, n, CONFIDENCE)
    ok = n > 0 and low <= QUOTED[name] <= high
    return ok, (f"{name} {k}/{n} = {k / max(n, 1):.1%} [{low:.1%}, {high:.1%}]"
                f"{'' if ok else f' does not contain the quoted {QUOTED[name]:.1%}'}")


@claim(_S_GD, "gradient descent p <- p - eps df_MSE/dp, full batch, trains the 2-2-1 ReLU network to "
       "solve XOR -- from some random starts only (small networks can fail): in the README's figures, "
       f"{QUOTED['solve rate']:.2%} of seeds, and of the solved nets {QUOTED['negative pair collapsed']:.0%} "
       f"collapse the two negative points onto one hidden point, {QUOTED['positive pair collapsed']:.0%} "
       "the two positive ones",
       f"{_SEEDS} seeds, He init, eps 0.1, 2000 epochs, one compiled run; solved = all 4 outputs within 0.5; "
       f"each quoted figure inside the {CONFIDENCE:.0%} Wilson interval of the measured fraction; no seed diverges")
def _gd_solves_xor() -> Check:
    seeds = sized(_SEEDS, _QUICK_SEEDS)
    runs = _run(seeds)
    neg, pos = (c[runs.solved] for c in collapsed_pairs(runs.W1, runs.b1))
    n_solved = int(runs.solved.sum())
    checks = [_in_interval("solve rate", n_solved, seeds),
              _in_interval("negative pair collapsed", int(neg.sum()), n_solved),
              _in_interval("positive pair collapsed", int(pos.sum()), n_solved)]
    n_div = int(runs.diverged.sum())
    note = "; ".join(text for _, text in checks) + f"; {n_div} diverged"
    return Check(None, all(ok for ok, _ in checks) and n_div == 0, note)


@claim(_S_LIN, "without a non-linearity a multi-layer network is affine, so gradient descent never solves "
       "XOR: it reaches at best the affine least-squares fit, f_MSE = 1/8",
       f"{_SEEDS} seeds of a 2-8-1 identity-activation network, 2000 epochs; no seed solves it; "
       "|median final loss - 1/8|")
def _linear_never_solves() -> Check:
    seeds = sized(_SEEDS, 100)
    runs = _run(seeds, width=8, activation="identity", init="glorot")
    err = float(abs(np.median(runs.final_loss) - 0.125))
    return Check(err, bool(not runs.solved.any() and err < 1e-4),
                 f"{int(runs.solved.sum())} of {seeds} seeds solved it")
