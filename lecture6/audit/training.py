"""Audit rows for "Training neural networks": gradient descent on XOR, run from many seeds at once."""

from __future__ import annotations

import jax
import numpy as np

from lecture6.audit import Check, claim
from lecture6.data import xor
from lecture6.runs import make_train_runs

ORDER = 50

_S_GD = "Gradient descent: XOR problem"
_S_LIN = "Crucial role of non-linearity"

# One compiled run of 1,000 seeds per row: a second or two.
_SEEDS = 1000
_BASE = {"width": 2, "depth": 1, "activation": "relu", "loss": "mse", "init": "he", "init_scale": 1.0, "bias_init": 0.0,
         "optimizer": "sgd", "lr": 0.1, "lrs": (), "momentum": 0.9, "grad": "autodiff", "epochs": 2000, "batch_size": 4,
         "seeds": _SEEDS, "seed": 0, "log_every": 100, "dtype": "float32", "layout": "auto"}


def _run(**kw):
    X, y = xor()
    runs = make_train_runs(dict(_BASE, **kw), (X, y))
    return jax.block_until_ready(runs.train(jax.random.key(0), runs.seed, runs.lr))


@claim(_S_GD, "gradient descent p <- p - eps df_MSE/dp, full batch, trains the 2-2-1 ReLU network to "
       "solve XOR -- from some random starts only (small networks can fail)",
       f"{_SEEDS} seeds, He init, eps 0.1, 2000 epochs, one compiled run; solved = all 4 outputs "
       "within 0.5; among solved nets, do W1, b1, ReLU map two same-class points to one hidden point?")
def _gd_solves_xor() -> Check:
    res = _run()
    solved = np.asarray(res.solved)
    X, _y = xor()
    W1, b1 = np.asarray(res.params[0]["W"], np.float64), np.asarray(res.params[0]["b"], np.float64)
    h = np.maximum(np.einsum("nd,shd->snh", X, W1) + b1[:, None, :], 0.0)[solved]  # (solved, 4, 2)
    neg = np.linalg.norm(h[:, 0] - h[:, 3], axis=1) < 1e-3  # (0,0) and (1,1) on one point
    pos = np.linalg.norm(h[:, 1] - h[:, 2], axis=1) < 1e-3  # (0,1) and (1,0) on one point
    rate = solved.mean()
    note = (f"{rate:.1%} of seeds solve it, {res.diverged.sum()} diverged; of the solved nets "
            f"{neg.mean():.0%} collapse the two negative points, {pos.mean():.0%} the two positive ones")
    return Check(None, bool(0.0 < rate < 1.0 and not res.diverged.any()), note)


@claim(_S_LIN, "without a non-linearity a multi-layer network is affine, so gradient descent never solves "
       "XOR: it reaches at best the affine least-squares fit, f_MSE = 1/8",
       f"{_SEEDS} seeds of a 2-8-1 identity-activation network, 2000 epochs; |median final loss - 1/8|")
def _linear_never_solves() -> Check:
    res = _run(width=8, activation="identity", init="glorot")
    err = float(abs(np.median(np.asarray(res.final_loss, np.float64)) - 0.125))
    return Check(err, bool(not res.solved.any() and err < 1e-4),
                 f"{int(res.solved.sum())} of {_SEEDS} seeds solved it")
