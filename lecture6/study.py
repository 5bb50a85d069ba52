"""The XOR solvability study: how often does gradient descent solve XOR, by hidden width and activation?

Every cell (width, activation) trains ``seeds`` networks, exactly as ``scripts/train_xor.py`` would with
that width and activation (same seeds, same initial weights, same arithmetic), and counts those whose
four outputs all end within 0.5 of their targets. The whole study is **one** compiled program: a
program per cell spent far more time compiling than training (about 2.5 s against 0.1-0.3 s a cell).
Inside it there is one training loop per width, run by ``lax.map`` for each activation, which
``lax.switch`` picks by its index.
:func:`wilson_interval` gives each rate's 95% interval; :func:`write_study` writes the table (Markdown
and CSV), the plot and the timings.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from scipy import stats

from lecture6 import plots, sharding
from lecture6.activations import get_activation
from lecture6.data import xor
from lecture6.rundir import write_json
from lecture6.runs import choose_layout, program_over_runs, runs_mesh, seeds_last_compiler_options
from lecture6.train import check_config, n_weights, params_from_noise, prepare_data

WIDTHS = (1, 2, 3, 4, 8, 16)
ACTIVATIONS = ("relu", "tanh", "sigmoid")

def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (scipy's ``binomtest``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at ``k = 0`` or ``k = n``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def padded_width(width: int) -> int:
    """The width a cell is padded to: the next power of two, at least 4. A step of width 4 costs about
    what one of width 1 or 2 does, while width 16 costs several times more (benchmarks/bench_study.py)."""
    return max(4, 1 << (int(width) - 1).bit_length())


def _with(config, **changes):
    return check_config({**config.to_dict(), **changes})


def make_study(config, cells: Sequence[tuple[str, int]], data, *, mesh=None):
    """One jitted ``study(key) -> (solved, final_loss, diverged)``, each ``(len(cells), seeds)``.

    ``cells`` are ``(activation, width)`` pairs; every other field comes from ``config`` (``config.lr``
    for every run). Cell ``(a, w)`` trains exactly the networks :func:`lecture6.runs.make_train_runs`
    trains for ``config`` with width ``w`` and activation ``a``.

    On several devices (or a ``mesh`` with a ``runs`` axis; :func:`lecture6.runs.runs_mesh`) the seeds
    are split over the ``runs`` axis, padded to a multiple of its size with NaN networks (flagged
    diverged), and the results stay split, ``(len(cells), seeds_padded)``: the caller takes
    ``sharding.to_host(a)[:, :seeds]`` where it needs host values.
    """
    config = check_config(config)
    X, Y = prepare_data(data, config)
    mesh = runs_mesh(mesh=mesh)
    S = config.seeds
    S_pad = S if mesh is None else sharding.padded_count(S, mesh, sharding.RUNS)
    split = None if mesh is None else NamedSharding(mesh, PartitionSpec(sharding.RUNS))
    widths = list(dict.fromkeys(w for _, w in cells))

    def place(tree):  # the seeds axis (leading) over the mesh's runs axis
        return tree if split is None else jax.lax.with_sharding_constraint(tree, split)

    def sizes(width):
        return (X.shape[1],) + (width,) * config.depth + (Y.shape[1],)

    def first_params(noise, width):
        """Every seed's initial params at ``width``, leading axis ``S``: seed s starts from row s of
        ``normal(init_key, (S, P))`` as in :func:`lecture6.train.init_params`, which is the first ``S * P``
        entries of one flat draw (threefry numbers depend on the flat index only)."""
        P = n_weights(sizes(width))
        draw = lambda row: params_from_noise(row, sizes(width), init=config.init, scale=config.init_scale,
                                             bias_init=config.bias_init)
        rows = noise[:S * P].reshape(S, P)
        rows = jnp.concatenate([rows, jnp.full((S_pad - S, P), jnp.nan, rows.dtype)]) if S_pad > S else rows
        return jax.vmap(draw)(place(rows))

    def train_width(width, acts, noise, order_keys):
        """Every cell of one width: ``(solved, final_loss, diverged)``, each ``(len(acts), S)``. ``lax.map``
        over the activations, each training all ``S`` seeds with the activation picked by ``lax.switch``."""
        cfg = check_config({**config.to_dict(), "width": width})
        layout = choose_layout(cfg, X, Y)
        fns = [get_activation(a)[0] for a in acts]
        params, lr = first_params(noise, width), place(jnp.full((S_pad,), config.lr, X.dtype))

        def train_cell(a):
            p = program_over_runs(cfg, (X, Y), layout, sigma=lambda z: jax.lax.switch(a, fns, z), mesh=mesh)
            state, (loss, acc) = jax.lax.scan(p.epochs, p.init(params, order_keys, lr), jnp.arange(p.n_log))
            res = p.finish(state, loss.T, acc.T, jnp.arange(S_pad), lr)
            return res.solved, res.final_loss, res.diverged

        return jax.lax.map(train_cell, jnp.arange(len(acts)))

    def study(key):
        init_key, order_key = jax.random.split(key)  # as lecture6.train.draw_network splits it
        noise = jax.random.normal(init_key, (S * max(n_weights(sizes(w)) for w in widths),), X.dtype)
        minibatches = config.batch_size < X.shape[0]  # full batch: no minibatch order to draw
        seeds = jnp.minimum(jnp.arange(S_pad), S - 1)  # a padding network reuses the last seed's order key
        order_keys = jax.random.split(order_key, S)[seeds] if minibatches else jax.vmap(lambda _: order_key)(seeds)
        order_keys = place(order_keys)
        out = {}
        for width in widths:
            acts = [a for a, w in cells if w == width]
            for a, *res in zip(acts, *train_width(width, acts, noise, order_keys)):
                out[a, width] = res
        return tuple(jnp.stack(r) for r in zip(*(out[c] for c in cells)))

    out = None if mesh is None else NamedSharding(mesh, PartitionSpec(None, sharding.RUNS))
    return jax.jit(study, out_shardings=out, compiler_options=seeds_last_compiler_options())


def solvability_study(config, *, widths: Sequence[int] = WIDTHS, activations: Sequence[str] = ACTIVATIONS,
                      seeds: int = 10000, log: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """Train ``seeds`` XOR networks for every activation x width; one row per cell, and the timings.

    ``config`` holds every other training field (init, lr, epochs, ...). Each row: ``width``,
    ``activation``, ``init``, ``seeds``, ``solved``, ``success_rate``, ``ci_low``, ``ci_high``,
    ``diverged``, ``final_loss_median``. The timings: ``compile_seconds``, ``train_seconds``, ``cells``.
    """
    config = check_config({**(config.to_dict() if hasattr(config, "to_dict") else dict(config)), "seeds": seeds})
    cells = [(a, int(w)) for a in activations for w in widths]
    for a, w in cells:
        _with(config, width=w, activation=a)  # a bad width or activation is named before compiling
    study = make_study(config, cells, xor())
    key = jax.random.key(config.seed)
    t0 = time.perf_counter()
    compiled = study.lower(key).compile()
    timing = {"compile_seconds": time.perf_counter() - t0, "cells": len(cells), "seeds": seeds}
    log(f"compiled the study ({len(cells)} cells x {seeds} seeds) in {timing['compile_seconds']:.2f} s; training ...")
    t0 = time.perf_counter()
    results = jax.block_until_ready(compiled(key))
    timing["train_seconds"] = time.perf_counter() - t0
    solved, final_loss, diverged = (sharding.to_host(a)[:, :seeds] for a in results)  # from every device
    rows = []
    for (act, width), ok, loss, div in zip(cells, solved, final_loss, diverged):
        k = int(ok.sum())
        lo, hi = wilson_interval(k, seeds)
        finite = np.asarray(loss, np.float64)[~div]
        rows.append({"width": width, "activation": act, "init": config.init, "seeds": seeds, "solved": k,
                     "success_rate": k / seeds, "ci_low": lo, "ci_high": hi, "diverged": int(div.sum()),
                     "final_loss_median": float(np.median(finite)) if finite.size else float("nan")})
        log(f"{act:8s} width {width:3d}: solved {k}/{seeds} = {k / seeds:.3f} [{lo:.3f}, {hi:.3f}]  "
            f"diverged {rows[-1]['diverged']}")
    log(f"trained in {timing['train_seconds']:.2f} s")
    return rows, timing


def markdown_table(rows: list[dict]) -> str:
    """Success rates (with 95% Wilson intervals) as a Markdown table: widths down, activations across."""
    acts = list(dict.fromkeys(r["activation"] for r in rows))
    widths = sorted({r["width"] for r in rows})
    cell = {(r["width"], r["activation"]): r for r in rows}
    lines = ["| width | " + " | ".join(acts) + " |", "|---:|" + "---:|" * len(acts)]
    for w in widths:
        cells = []
        for a in acts:
            r = cell.get((w, a))
            cells.append(f"{r['success_rate']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if r else "")
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_study(rows: list[dict], outdir: str, *, header: str = "", timing: dict | None = None) -> dict:
    """Write ``study.md``, ``study.csv``, ``success_vs_width.png`` and ``summary.json`` (the timings) into
    ``outdir``, each file replaced whole; return the paths."""
    os.makedirs(outdir, exist_ok=True)
    paths = {k: os.path.join(outdir, name) for k, name in
             (("md", "study.md"), ("csv", "study.csv"), ("png", "success_vs_width.png"), ("json", "summary.json"))}
    tmp = {k: p + ".tmp" + os.path.splitext(p)[1] for k, p in paths.items()}
    with open(tmp["md"], "w") as f:
        f.write(header + ("\n\n" if header else "") + markdown_table(rows))
    with open(tmp["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plots.success_vs_width(rows, tmp["png"])
    write_json(tmp["json"], {**(timing or {}), "rows": rows})
    for k, p in paths.items():
        os.replace(tmp[k], p)
    return paths
