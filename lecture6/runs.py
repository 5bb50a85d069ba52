"""Many networks at once: every seed and learning rate of a config as one compiled program.

Run ``r`` trains seed ``r % seeds`` at rate ``lrs[r // seeds]`` (every rate sees the same seeds;
:func:`run_grid`). :func:`make_train_runs` is ``jax.vmap`` of :func:`lecture6.train.make_train`'s pieces
over the runs -- ``seed`` and ``lr`` are plain ``(R,)`` arrays, the runs axis is the leading axis of every
result -- with aggregate progress lines every few epochs. For small full-batch networks on many runs
(XOR) it uses the seeds-last layout of :mod:`lecture6.train_seeds_last` instead, by the thresholds below.

    runs = make_train_runs(config, data)
    result = runs.train(jax.random.key(config.seed), runs.seed, runs.lr)   # TrainResult, leading axis R
    host = runs.gather(result)                                               # NumPy, the R runs

More devices, same program. When more than one device is visible (every device of every process,
:func:`lecture6.distributed.initialize`), or a mesh is passed, the runs are split over the mesh's ``runs``
axis: ``runs.seed`` and ``runs.lr`` are placed with ``NamedSharding(mesh, P("runs"))``, the program runs
each device's runs where they sit (runs are independent: no collective but the progress lines' sums), and
every field of the result keeps that layout until :meth:`Runs.gather` brings it to the host (from every
process). A run count that the devices do not divide is padded with runs of seed index
``config.seeds``, whose weights are NaN (:func:`lecture6.train.init_params`): they are flagged diverged,
left out of the progress lines, and dropped by :meth:`Runs.gather`. With ``config.data_parallel`` the
devices make a ``data`` axis instead, and each minibatch is split over it
(:func:`lecture6.train.make_program`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lecture6 import sharding, train_seeds_last
from lecture6.train import Program, TrainResult, check_config, draw_network, make_program, prepare_data

# `python benchmarks/bench_train.py --sweep` (2-core x86_64 CPU, float32 XOR, benchmarks/RESULTS.md): the
# seeds-last layout beat vmap at every point measured (by the range of the "train_sweep.range" figure
# there), from 8 runs (width 2) to width 64 at 10,000 runs (768 products of examples x weights per
# forward pass). Outside that range it is unmeasured.
SEEDS_LAST_MIN_RUNS = 8
SEEDS_LAST_MAX_PRODUCTS = 768


def accepted_compiler_options(options: dict) -> dict:
    """``options`` if this XLA compiles a program with them, else ``{}``: XLA raises ``INVALID_ARGUMENT`` for
    an option it does not know (options come and go between jaxlib releases), and a program must still run."""
    try:
        jax.jit(lambda x: x, compiler_options=options).lower(0.0).compile()
    except jax.errors.JaxRuntimeError:
        return {}
    return dict(options)


@functools.cache
def seeds_last_compiler_options() -> dict:
    """XLA options for seeds-last programs: their small reductions (over a layer's units) compiled as
    XLA's own loops. XLA's CPU backend otherwise hands them to YNNPACK fusions, which made the 2-2-1 and
    2-16-1 programs 42x and 22x slower at 10,000 runs (``benchmarks/bench_train.py --parts``). Empty
    where XLA does not know the option."""
    return accepted_compiler_options({"xla_cpu_experimental_ynn_fusion_type": ""})


class TrainingDiverged(RuntimeError):
    """Every run of a training program diverged (its loss or parameters became non-finite)."""


class Runs(NamedTuple):
    """Every run of a config, ready to compile: ``train(key, seed, lr)`` with ``seed``, ``lr`` ``(R,)``.

    On a mesh ``seed`` and ``lr`` are ``jax.Array`` s split over its ``runs`` axis and padded to ``R_pad``
    runs (a multiple of the axis size; see the module docstring); ``count`` is the number of real runs.
    """

    train: Callable  # jitted; returns a TrainResult whose fields have a leading run axis
    seed: np.ndarray | jax.Array  # (R_pad,) seed index of each run (config.seeds: a padding run)
    lr: np.ndarray | jax.Array  # (R_pad,) learning rate of each run
    layout: str  # "vmap" or "seeds_last"
    steps: int  # minibatch steps per run
    count: int | None = None  # R, the real runs (None: all of seed)
    mesh: Mesh | None = None  # the mesh the runs are split over (None: one device)

    def gather(self, result) -> TrainResult:
        """``result`` of ``train`` as NumPy arrays on the host, the ``count`` real runs only.

        A result split over devices of several processes is gathered from all of them (every process
        gets the whole result); call it where host values are needed, on every process alike.
        """
        count = self.count if self.count is not None else int(np.shape(self.seed)[0])
        out = {}
        for field, value in result._asdict().items():
            host = jax.tree.map(sharding.to_host, value)
            out[field] = host if field == "epochs" else jax.tree.map(lambda a: a[:count], host)
        return TrainResult(**out)


def run_grid(config) -> tuple[np.ndarray, np.ndarray]:
    """``(seed (R,), lr (R,))``: run ``r`` trains seed ``r % seeds`` at rate ``lrs[r // seeds]``."""
    lrs = tuple(config.lrs) or (config.lr,)
    return (np.tile(np.arange(config.seeds), len(lrs)),
            np.repeat(np.asarray(lrs, dtype=config.dtype), config.seeds))


def choose_layout(config, X, Y) -> str:
    """``config.layout``, or for ``"auto"`` the faster one measured (see the thresholds above); ``"vmap"``
    with ``config.data_parallel``."""
    if config.layout != "auto":
        return config.layout
    runs = config.seeds * max(1, len(config.lrs))
    sizes = (X.shape[1],) + (config.width,) * config.depth + (Y.shape[1],)
    products = X.shape[0] * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    fits = config.loss == "mse" and config.grad == "autodiff" and config.batch_size >= X.shape[0]
    fits = fits and not config.get("data_parallel", False)  # examples split over devices: the vmap layout
    return "seeds_last" if fits and runs >= SEEDS_LAST_MIN_RUNS and products <= SEEDS_LAST_MAX_PRODUCTS else "vmap"


def program_over_runs(config, data, layout: str, *, sigma=None, mesh: Mesh | None = None) -> Program:
    """:func:`lecture6.train.make_program`'s pieces over all runs at once: ``init(params, order_key, lr)``
    with a leading run axis ``R`` on each, ``vmap``-ed (``layout="vmap"``) or written over the runs
    (``"seeds_last"``, :mod:`lecture6.train_seeds_last`; there ``sigma`` sees every run's ``z``).

    ``mesh`` (from :func:`runs_mesh`): under ``vmap`` the runs axis is pinned to the mesh's ``runs`` axis
    (``spmd_axis_name``) and, with ``config.data_parallel``, each minibatch is split over ``data``."""
    if layout == "seeds_last":
        if mesh is not None and mesh.shape.get(sharding.DATA, 1) > 1:
            raise ValueError(f"a mesh with a {sharding.DATA!r} axis of {mesh.shape[sharding.DATA]} devices "
                             "(config.data_parallel) splits each minibatch, which the seeds-last layout does "
                             "not have; use config.layout = 'vmap'")
        return train_seeds_last.make_program(config, data, sigma=sigma)
    p = make_program(config, data, sigma=sigma, mesh=mesh)
    spmd = {} if mesh is None else {"spmd_axis_name": sharding.RUNS}
    return p._replace(init=jax.vmap(p.init, **spmd), epochs=jax.vmap(p.epochs, in_axes=(0, None), **spmd),
                      finish=jax.vmap(p.finish, out_axes=TrainResult(*[0] * 10)._replace(epochs=None), **spmd))


def runs_mesh(config=None, mesh: Mesh | None = None) -> Mesh | None:
    """The mesh that training runs are split over, or ``None`` for one device.

    ``mesh`` as given (it must have a ``runs`` axis; a ``data`` axis is optional), else, when more than
    one device is visible, a 2-D mesh ``(runs, data)`` over every device of every process:
    ``(devices, 1)``, or ``(1, devices)`` with ``config.data_parallel``.
    """
    if mesh is not None:
        if sharding.RUNS not in mesh.shape:
            raise ValueError(f"the mesh has axes {tuple(mesh.shape)}; training runs need a {sharding.RUNS!r} axis")
        return mesh
    if jax.device_count() == 1:
        return None
    devices = sharding.make_mesh(sharding.RUNS).devices
    shape = (1, devices.size) if config is not None and config.get("data_parallel", False) else (devices.size, 1)
    return Mesh(devices.reshape(shape), (sharding.RUNS, sharding.DATA))


def pad_runs(seed: np.ndarray, lr: np.ndarray, seeds: int, mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """``(seed, lr)`` padded to a multiple of the mesh's ``runs`` axis with runs of seed index ``seeds``
    (NaN weights, flagged diverged) at the first rate."""
    n_pad = sharding.padded_count(seed.size, mesh, sharding.RUNS)
    extra = n_pad - seed.size
    return (np.concatenate([seed, np.full(extra, seeds, seed.dtype)]),
            np.concatenate([lr, np.full(extra, lr[0], lr.dtype)]))


def make_train_runs(config, data, *, progress: Callable | None = None, progress_every: int = 0,
                    mesh: Mesh | None = None) -> Runs:
    """Every run of ``config`` (seeds x learning rates) as one jitted program; see the module docstring.

    Args:
      config: every training field (:func:`lecture6.train.check_config`).
      data: ``(X (n, d), Y)`` (:func:`lecture6.train.prepare_data`).
      progress: optional host function ``progress(epoch, mean_loss, n_finite, solved_fraction,
        mean_accuracy)`` called from inside the compiled run every ``progress_every`` epochs and at the
        end, with aggregates over the runs whose loss is still finite.
      mesh: a mesh with a ``runs`` axis to split the runs over (see the module docstring); default: every
        device when there are several (:func:`runs_mesh`), none on one device.

    Calls with keys of the same kind reuse the compiled program (``runs.train._cache_size()`` stays 1).
    """
    config = check_config(config)
    X, Y = prepare_data(data, config)
    layout = choose_layout(config, X, Y)
    seed, lr = run_grid(config)
    count = seed.size
    mesh = runs_mesh(config, mesh)
    p = program_over_runs(config, (X, Y), layout, mesh=mesh)
    every = max(1, progress_every // config.log_every) if progress_every else p.n_log

    def train_runs(key, seed, lr):
        def logged(state, j):
            state, (loss, acc) = p.epochs(state, j)
            if progress is not None:
                due = ((j + 1) % every == 0) | (j + 1 == p.n_log)
                report(progress, (j + 1) * config.log_every, due, state.finite, loss, acc, count=count)
            return state, (loss, acc)

        params, order_key = jax.vmap(lambda s: draw_network(key, s, config, p.sizes, minibatches=p.minibatches))(seed)
        state, (loss, acc) = jax.lax.scan(logged, p.init(params, order_key, lr), jnp.arange(p.n_log))
        return p.finish(state, loss.T, acc.T, seed, lr)

    options = seeds_last_compiler_options() if layout == "seeds_last" else None
    if mesh is None:
        return Runs(jax.jit(train_runs, compiler_options=options), seed, lr, layout, p.steps, count)
    seed, lr = sharding.shard_leading(pad_runs(seed, lr, config.seeds, mesh), mesh, axis=sharding.RUNS)
    split, whole = NamedSharding(mesh, P(sharding.RUNS)), NamedSharding(mesh, P())
    out = TrainResult(*[split] * 10)._replace(epochs=whole)
    train = jax.jit(train_runs, in_shardings=(whole, split, split), out_shardings=out, compiler_options=options)
    return Runs(train, seed, lr, layout, p.steps, count, mesh)


def report(progress: Callable, epoch, due, finite, loss, acc, *, count: int | None = None) -> None:
    """Send ``progress(epoch, mean loss, finite runs, solved fraction, mean accuracy)`` to the host when
    ``due`` or at the last epoch; the means are over the runs whose loss is finite so far, the solved
    fraction over the first ``count`` runs (default: all; padding runs are never finite)."""
    ok = finite & jnp.isfinite(loss)
    n_ok = jnp.sum(ok)
    mean_loss = jnp.sum(jnp.where(ok, loss, 0.0)) / jnp.maximum(n_ok, 1)
    mean_acc = jnp.sum(jnp.where(ok, acc, 0.0)) / jnp.maximum(n_ok, 1)
    solved = jnp.sum(jnp.where(ok, acc == 1.0, False).astype(loss.dtype)) / (count or loss.shape[0])

    def send(epoch, mean_loss, n_ok, solved, mean_acc):
        progress(int(epoch), float(mean_loss), int(n_ok), float(solved), float(mean_acc))

    jax.lax.cond(due, lambda: jax.debug.callback(send, epoch, mean_loss, n_ok, solved, mean_acc), lambda: None)


def compile_and_run(runs: Runs, key, log: Callable[[str], None] | None = None) -> tuple[TrainResult, dict]:
    """Compile ``runs.train`` ahead of time (``log`` says how long), run it once; returns the result on
    the host (:meth:`Runs.gather`: NumPy arrays, the real runs) and the timings: ``compile_seconds``,
    ``train_seconds``, ``seed_steps_per_second``, ..."""
    count = runs.count if runs.count is not None else int(np.shape(runs.seed)[0])
    devices = "" if runs.mesh is None else f" over {runs.mesh.devices.size} devices {dict(runs.mesh.shape)}"
    t0 = time.perf_counter()
    compiled = runs.train.lower(key, runs.seed, runs.lr).compile()
    compile_s = time.perf_counter() - t0
    if log is not None:
        log(f"compiled in {compile_s:.2f} s ({count} runs, layout {runs.layout}{devices}); training ...")
    t0 = time.perf_counter()
    result = jax.block_until_ready(compiled(key, runs.seed, runs.lr))
    jax.effects_barrier()  # every progress line printed
    train_s = time.perf_counter() - t0
    return runs.gather(result), {"compile_seconds": compile_s, "train_seconds": train_s, "steps_per_seed": runs.steps,
                                 "seed_steps_per_second": count * runs.steps / train_s, "layout": runs.layout}


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
