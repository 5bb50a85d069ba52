"""Many networks at once: every seed and learning rate of a config as one compiled program.

Run ``r`` trains seed ``r % seeds`` at rate ``lrs[r // seeds]`` (every rate sees the same seeds;
:func:`run_grid`). :func:`make_train_runs` is ``jax.vmap`` of :func:`lecture6.train.make_train`'s pieces
over the runs -- ``seed`` and ``lr`` are plain ``(R,)`` arrays, the runs axis is the leading axis of every
result -- with aggregate progress lines every few epochs. For small full-batch networks on many runs
(XOR) it uses the seeds-last layout of :mod:`lecture6.train_seeds_last` instead, by the thresholds below.

    runs = make_train_runs(config, data)
    result = runs.train(jax.random.key(config.seed), runs.seed, runs.lr)   # TrainResult, leading axis R
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import train_seeds_last
from lecture6.train import Program, TrainResult, check_config, draw_network, make_program, prepare_data

# `python benchmarks/bench_train.py --sweep` (2-core x86_64 CPU, float32 XOR, benchmarks/RESULTS.md): the
# seeds-last layout beat vmap at every point measured, 1.6-9.6x, from 8 runs (width 2) to width 64 at
# 10,000 runs (768 products of examples x weights per forward pass). Outside that range it is unmeasured.
SEEDS_LAST_MIN_RUNS = 8
SEEDS_LAST_MAX_PRODUCTS = 768


@functools.cache
def seeds_last_compiler_options() -> dict:
    """XLA options for seeds-last programs: their small reductions (over a layer's units) compiled as
    XLA's own loops. XLA's CPU backend otherwise hands them to YNNPACK fusions, which made the 2-2-1 and
    2-16-1 programs 42x and 22x slower at 10,000 runs (``benchmarks/bench_train.py --parts``). Empty
    where XLA does not know the option."""
    options = {"xla_cpu_experimental_ynn_fusion_type": ""}
    try:
        jax.jit(lambda x: x, compiler_options=options).lower(0.0).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return options


class TrainingDiverged(RuntimeError):
    """Every run of a training program diverged (its loss or parameters became non-finite)."""


class Runs(NamedTuple):
    """Every run of a config, ready to compile: ``train(key, seed, lr)`` with ``seed``, ``lr`` ``(R,)``."""

    train: Callable  # jitted; returns a TrainResult whose fields have a leading run axis
    seed: np.ndarray  # (R,) seed index of each run
    lr: np.ndarray  # (R,) learning rate of each run
    layout: str  # "vmap" or "seeds_last"
    steps: int  # minibatch steps per run


def run_grid(config) -> tuple[np.ndarray, np.ndarray]:
    """``(seed (R,), lr (R,))``: run ``r`` trains seed ``r % seeds`` at rate ``lrs[r // seeds]``."""
    lrs = tuple(config.lrs) or (config.lr,)
    return (np.tile(np.arange(config.seeds), len(lrs)),
            np.repeat(np.asarray(lrs, dtype=config.dtype), config.seeds))


def choose_layout(config, X, Y) -> str:
    """``config.layout``, or for ``"auto"`` the faster one measured (see the thresholds above)."""
    if config.layout != "auto":
        return config.layout
    runs = config.seeds * max(1, len(config.lrs))
    sizes = (X.shape[1],) + (config.width,) * config.depth + (Y.shape[1],)
    products = X.shape[0] * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    fits = config.loss == "mse" and config.grad == "autodiff" and config.batch_size >= X.shape[0]
    return "seeds_last" if fits and runs >= SEEDS_LAST_MIN_RUNS and products <= SEEDS_LAST_MAX_PRODUCTS else "vmap"


def program_over_runs(config, data, layout: str, *, sigma=None) -> Program:
    """:func:`lecture6.train.make_program`'s pieces over all runs at once: ``init(params, order_key, lr)``
    with a leading run axis ``R`` on each, ``vmap``-ed (``layout="vmap"``) or written over the runs
    (``"seeds_last"``, :mod:`lecture6.train_seeds_last`; there ``sigma`` sees every run's ``z``)."""
    if layout == "seeds_last":
        return train_seeds_last.make_program(config, data, sigma=sigma)
    p = make_program(config, data, sigma=sigma)
    return p._replace(init=jax.vmap(p.init), epochs=jax.vmap(p.epochs, in_axes=(0, None)),
                      finish=jax.vmap(p.finish, out_axes=TrainResult(*[0] * 10)._replace(epochs=None)))


def make_train_runs(config, data, *, progress: Callable | None = None, progress_every: int = 0) -> Runs:
    """Every run of ``config`` (seeds x learning rates) as one jitted program; see the module docstring.

    Args:
      config: every training field (:func:`lecture6.train.check_config`).
      data: ``(X (n, d), Y)`` (:func:`lecture6.train.prepare_data`).
      progress: optional host function ``progress(epoch, mean_loss, n_finite, solved_fraction,
        mean_accuracy)`` called from inside the compiled run every ``progress_every`` epochs and at the
        end, with aggregates over the runs whose loss is still finite.

    Calls with keys of the same kind reuse the compiled program (``runs.train._cache_size()`` stays 1).
    """
    config = check_config(config)
    X, Y = prepare_data(data, config)
    layout = choose_layout(config, X, Y)
    seed, lr = run_grid(config)
    p = program_over_runs(config, (X, Y), layout)
    every = max(1, progress_every // config.log_every) if progress_every else p.n_log

    def train_runs(key, seed, lr):
        def logged(state, j):
            state, (loss, acc) = p.epochs(state, j)
            if progress is not None:
                due = ((j + 1) % every == 0) | (j + 1 == p.n_log)
                report(progress, (j + 1) * config.log_every, due, state.finite, loss, acc)
            return state, (loss, acc)

        params, order_key = jax.vmap(lambda s: draw_network(key, s, config, p.sizes, minibatches=p.minibatches))(seed)
        state, (loss, acc) = jax.lax.scan(logged, p.init(params, order_key, lr), jnp.arange(p.n_log))
        return p.finish(state, loss.T, acc.T, seed, lr)

    options = seeds_last_compiler_options() if layout == "seeds_last" else None
    return Runs(jax.jit(train_runs, compiler_options=options), seed, lr, layout, p.steps)


def report(progress: Callable, epoch, due, finite, loss, acc) -> None:
    """Send ``progress(epoch, mean loss, finite runs, solved fraction, mean accuracy)`` to the host when
    ``due`` or at the last epoch; the means are over the runs whose loss is finite so far."""
    ok = finite & jnp.isfinite(loss)
    n_ok = jnp.sum(ok)
    mean_loss = jnp.sum(jnp.where(ok, loss, 0.0)) / jnp.maximum(n_ok, 1)
    mean_acc = jnp.sum(jnp.where(ok, acc, 0.0)) / jnp.maximum(n_ok, 1)
    solved = jnp.mean(jnp.where(ok, acc == 1.0, False).astype(loss.dtype))

    def send(epoch, mean_loss, n_ok, solved, mean_acc):
        progress(int(epoch), float(mean_loss), int(n_ok), float(solved), float(mean_acc))

    jax.lax.cond(due, lambda: jax.debug.callback(send, epoch, mean_loss, n_ok, solved, mean_acc), lambda: None)


def compile_and_run(runs: Runs, key, log: Callable[[str], None] | None = None) -> tuple[TrainResult, dict]:
    """Compile ``runs.train`` ahead of time (``log`` says how long), run it once; returns the result and
    the timings: ``compile_seconds``, ``train_seconds``, ``seed_steps_per_second``, ..."""
    t0 = time.perf_counter()
    compiled = runs.train.lower(key, runs.seed, runs.lr).compile()
    compile_s = time.perf_counter() - t0
    if log is not None:
        log(f"compiled in {compile_s:.2f} s ({runs.seed.size} runs, layout {runs.layout}); training ...")
    t0 = time.perf_counter()
    result = jax.block_until_ready(compiled(key, runs.seed, runs.lr))
    jax.effects_barrier()  # every progress line printed
    train_s = time.perf_counter() - t0
    return result, {"compile_seconds": compile_s, "train_seconds": train_s, "steps_per_seed": runs.steps,
                    "seed_steps_per_second": runs.seed.size * runs.steps / train_s, "layout": runs.layout}


# ---------------------------------------------------------------------------------------------------
# Host-side summaries
# ---------------------------------------------------------------------------------------------------


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
    qs = np.quantile(loss, quantiles, axis=0) if ok.any() else None
    rows = []
    for j, epoch in enumerate(np.asarray(result.epochs).tolist()):
        row = {"epoch": int(epoch), "runs": int(ok.sum())}
        for i, q in enumerate(quantiles):
            row["loss_median" if q == 0.5 else f"loss_q{round(q * 100):02d}"] = None if qs is None else float(qs[i, j])
        row["loss_mean"] = float(loss[:, j].mean()) if ok.any() else None
        row["accuracy_mean"] = float(acc[:, j].mean()) if ok.any() else None
        row["solved_fraction"] = float((acc[:, j] == 1.0).mean()) if ok.any() else None
        rows.append(row)
    return rows
