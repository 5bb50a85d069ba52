"""The XOR solvability study: how often does gradient descent solve XOR, by hidden width and activation?

Every cell (width, activation) trains ``seeds`` networks, exactly as ``scripts/train_xor.py`` would with
that width and activation (same seeds, same initial weights, same arithmetic), and counts those whose
four outputs all end within 0.5 of their targets. The study is **one compiled program per width**, each
holding a training loop per activation (the activation fixed in it): a program per cell spent far more
time compiling than training (about 2.5 s against 0.1-0.3 s a cell), and an activation picked at run
time by ``lax.switch``, one loop per width, trained 2.2x slower (27 s against 12 s for the 18 cells at
10,000 seeds on one device: the conditional in the step splits XLA's fusions). Each width
trains the moment its program is compiled, while the next one compiles (:class:`Study`), and its rows
reach the host as soon as it finishes.
:func:`wilson_interval` gives each rate's 95% interval; :func:`write_study` writes the table (Markdown
and CSV), the plot and the timings.

**A long study survives interruption.** With ``outdir``, :func:`solvability_study` writes each width's
rows (a *cell block*, ``outdir/cells/width_W.json``) the moment that width's program finishes, each
file written whole (a temporary file, then ``os.replace``). A rerun on
the same ``outdir`` reuses the blocks of the same study -- same training config, seed count, width and
activations, recorded in each block as its *fingerprint* -- and trains only the missing ones; a block of
another study is refused (or, with ``replace_stale=True``, recomputed). The final files
(:data:`FINAL_FILES`, ``summary.json`` last) are written only once every block exists.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lecture6 import sharding
from lecture6.activations import get_activation
from lecture6.data import xor
from lecture6.rundir import write_atomically, write_json
from lecture6.runs import choose_layout, program_over_runs, runs_mesh, seeds_last_compiler_options
from lecture6.train import check_config, n_weights, params_from_noise, prepare_data

WIDTHS = (1, 2, 3, 4, 8, 16)
ACTIVATIONS = ("relu", "tanh", "sigmoid")
CELLS_DIR = "cells"  # under a study's outdir: one block of rows per width
#: What :func:`write_study` writes into a study's outdir, in this order: ``summary.json`` last marks a
#: finished study.
FINAL_FILES = ("study.md", "study.csv", "success_vs_width.png", "summary.json")
BLOCK_FORMAT = 1  # bump when a block's rows change meaning: older blocks are then not reused
# Config fields that a block's fingerprint leaves out: set per cell (width, activation), or without
# effect on any result (progress lines).
_NOT_FINGERPRINTED = ("width", "activation", "progress_every")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (scipy's ``binomtest``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at ``k = 0`` or ``k = n``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    from scipy import stats  # imported when first needed: 0.4 s, while the study trains

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _with(config, **changes):
    return check_config({**config.to_dict(), **changes})


class Study:
    """The study's programs, one per width (:func:`make_study`). ``study(key)`` runs them all and returns
    the cells' results; :meth:`run` reports each width as it finishes; :meth:`compile` compiles ahead.

    A width that is not compiled yet is compiled when :meth:`run` needs it, in a background thread, one
    program after another, and each width is dispatched the moment its program is ready: a width trains
    while the next compiles. On 2 cores this hides most of the compiling behind the training
    (``benchmarks/bench_study.py``): XLA keeps about 1.6 cores busy compiling one program and the
    training fills the rest. The widest, slowest to train, go first, so that the others' compiling
    overlaps it. ``compile_seconds`` (after a run: the seconds each width's program took to trace and
    compile, overlapped with training) says what the compiling cost."""

    def __init__(self, cells, draw, programs: dict, seeds: int):
        self.cells, self.draw, self.programs, self.seeds = list(cells), draw, programs, seeds
        self.compiled: dict = {}
        self.compile_seconds: dict = {}

    def _compile(self, width, drawn):
        if width not in self.compiled:
            t0 = time.perf_counter()
            self.compiled[width] = self.programs[width].lower(*drawn).compile()
            self.compile_seconds[width] = time.perf_counter() - t0
        return self.compiled[width]

    def order(self) -> list[int]:
        """The widths in the order they are compiled and trained: widest first."""
        return sorted(self.programs, reverse=True)

    def compile(self, key) -> Study:
        """Compile every width's program for ``key`` now, one after another; returns ``self``."""
        drawn = self.draw(key)
        for width in self.order():
            self._compile(width, drawn)
        return self

    def run(self, key, *, on_width: Callable | None = None) -> dict:
        """Every width's ``(solved, final_loss, diverged)``, by width in :meth:`order`, each
        ``(activations of the width, seeds_padded)`` in the order of ``cells`` (on several devices still
        split over them).

        A background thread compiles what is not compiled yet, one program after another, and each width
        is dispatched as soon as its program is ready, queued behind the width before it.
        ``on_width(width, solved, final_loss, diverged)``, if given, is called on the host as each width
        finishes, in :meth:`order`, with that width's NumPy results, the padding networks cut off. With
        several processes it is called once every width is dispatched: fetching results there is a
        collective, which every process must issue in the same order."""
        drawn = self.draw(key)  # every width's initial weights and order keys
        widths = self.order()
        pending, unreported = {}, []

        def report(width):
            if on_width is not None:
                on_width(width, *(sharding.to_host(r)[:, :self.seeds] for r in pending[width]))

        with ThreadPoolExecutor(1) as pool:
            # Dispatching from this thread, not the compiling one: with several devices a call returns
            # only once the program before it is nearly done, and the compiling would wait for it.
            for width, program in [(w, pool.submit(self._compile, w, drawn)) for w in widths]:
                pending[width] = program.result()(*drawn)
                unreported.append(width)
                if len(unreported) > 1 and jax.process_count() == 1:
                    report(unreported.pop(0))  # the width before, while this one waits behind it
        for width in unreported:
            report(width)
        return pending

    def __call__(self, key):
        """``(solved, final_loss, diverged)``, each ``(len(cells), seeds_padded)`` in the order of ``cells``."""
        pending = self.run(key)
        by_width = [(a, w) for w in pending for a, v in self.cells if v == w]  # the rows of the widths' results
        order = jnp.array([by_width.index(c) for c in self.cells])
        return tuple(jnp.concatenate(r)[order] for r in zip(*pending.values()))


def make_study(config, cells: Sequence[tuple[str, int]], data, *, mesh=None) -> Study:
    """The study of ``cells`` as one jitted program per width: ``study(key) -> (solved, final_loss,
    diverged)``, each ``(len(cells), seeds)`` (:class:`Study`).

    ``cells`` are ``(activation, width)`` pairs; every other field comes from ``config`` (``config.lr``
    for every run). Cell ``(a, w)`` trains exactly the networks :func:`lecture6.runs.make_train_runs`
    trains for ``config`` with width ``w`` and activation ``a``: a width's program holds one training loop
    per activation, each for all seeds.

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

    P_max = max(n_weights(sizes(w)) for w in widths)  # every width's draw is the same, sized for the widest

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

    def draw(key):
        """What every width starts from: one flat normal draw, sized for the widest width, and each seed's
        minibatch order key ``(S_pad,)``, split over the mesh. One program for all widths: in each
        width's program the random number generator would cost as much compiling as a training loop."""
        init_key, order_key = jax.random.split(key)  # as lecture6.train.draw_network splits it
        noise = jax.random.normal(init_key, (S * P_max,), X.dtype)
        minibatches = config.batch_size < X.shape[0]  # full batch: no minibatch order to draw
        seeds = jnp.minimum(jnp.arange(S_pad), S - 1)  # a padding network reuses the last seed's order key
        order_keys = jax.random.split(order_key, S)[seeds] if minibatches else jax.vmap(lambda _: order_key)(seeds)
        return noise, place(order_keys)

    def train_width(width, acts, noise, order_keys):
        """Every cell of one width: ``(solved, final_loss, diverged)``, each ``(len(acts), S)``; one
        training loop per activation, each training all ``S`` seeds."""
        cfg = check_config({**config.to_dict(), "width": width})
        layout = choose_layout(cfg, X, Y)
        params, lr = first_params(noise, width), place(jnp.full((S_pad,), config.lr, X.dtype))
        results = []
        for act in acts:
            p = program_over_runs(cfg, (X, Y), layout, sigma=get_activation(act)[0], mesh=mesh)
            state, (loss, acc) = jax.lax.scan(p.epochs, p.init(params, order_keys, lr), jnp.arange(p.n_log))
            res = p.finish(state, loss.T, acc.T, jnp.arange(S_pad), lr)
            results.append((res.solved, res.final_loss, res.diverged))
        return tuple(jnp.stack(r) for r in zip(*results))

    whole = None if mesh is None else NamedSharding(mesh, PartitionSpec())
    out = None if mesh is None else NamedSharding(mesh, PartitionSpec(None, sharding.RUNS))
    programs = {w: jax.jit(functools.partial(train_width, w, [a for a, v in cells if v == w]), out_shardings=out,
                           compiler_options=seeds_last_compiler_options()) for w in widths}
    return Study(cells, jax.jit(draw, out_shardings=(whole, split)), programs, S)


def solvability_study(config, *, widths: Sequence[int] = WIDTHS, activations: Sequence[str] = ACTIVATIONS,
                      seeds: int = 10000, log: Callable[[str], None] = print, outdir: str | None = None,
                      replace_stale: bool = False) -> tuple[list[dict], dict]:
    """Train ``seeds`` XOR networks for every activation x width; one row per cell, and the timings.

    ``config`` holds every other training field (init, lr, epochs, ...). Each row: ``width``,
    ``activation``, ``init``, ``seeds``, ``solved``, ``success_rate``, ``ci_low``, ``ci_high``,
    ``diverged``, ``final_loss_median``. The timings (of the cells trained by this call):
    ``seconds`` (compiling and training, wall clock), ``compile_seconds`` (the programs' tracing and
    compiling, summed: a background thread, beside the training; :class:`Study`), ``cells``, ``seeds``,
    and with ``outdir`` ``computed_widths`` and ``reused_widths``.

    With ``outdir``, each width's rows are written to ``outdir/cells/width_W.json`` as soon as that
    width is trained, and blocks already there are reused when their fingerprint matches this study
    (see the module docstring). A block of another study raises ``ValueError`` naming the block and what
    differs, before anything is trained -- unless ``replace_stale``, which recomputes it. Before any
    training the final files of ``outdir`` (:data:`FINAL_FILES`) are removed, so that a table never
    stands beside blocks it does not come from; :func:`write_study` writes them again.
    """
    config = check_config({**(config.to_dict() if hasattr(config, "to_dict") else dict(config)), "seeds": seeds})
    widths = [int(w) for w in dict.fromkeys(widths)]
    activations = list(dict.fromkeys(activations))
    cells = [(a, w) for a in activations for w in widths]
    for a, w in cells:
        _with(config, width=w, activation=a)  # a bad width or activation is named before compiling
    done: dict[int, list[dict]] = {}
    cells_dir = None if outdir is None else os.path.join(outdir, CELLS_DIR)
    if cells_dir is not None:
        done = _reusable_blocks(cells_dir, config, widths, activations, replace_stale, log)
    todo = [(a, w) for a, w in cells if w not in done]
    timing = {"compile_seconds": 0.0, "seconds": 0.0, "cells": len(cells), "seeds": seeds}
    if cells_dir is not None:
        timing.update(computed_widths=[w for w in widths if w not in done], reused_widths=sorted(done))
    if todo:
        if outdir is not None:
            _remove_final_files(outdir, log)
        done.update(_train_cells(config, todo, cells_dir, timing, log))
    by_cell = {(r["activation"], r["width"]): r for block in done.values() for r in block}
    rows = [by_cell[c] for c in cells]
    for r in rows:
        log(f"{r['activation']:8s} width {r['width']:3d}: solved {r['solved']}/{seeds} = {r['success_rate']:.3f} "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]  diverged {r['diverged']}")
    if todo:
        log(f"compiled and trained in {timing['seconds']:.2f} s ({timing['compile_seconds']:.2f} s of it "
            "compiling, beside the training)")
    return rows, timing


def _train_cells(config, cells, cells_dir, timing, log) -> dict[int, list[dict]]:
    """Compile and run the programs for ``cells``; with ``cells_dir`` write each width's block as it
    finishes. Returns the rows by width and fills in ``timing``."""
    seeds = config.seeds
    out: dict[int, list[dict]] = {}

    def finished(width, solved, final_loss, diverged):
        acts = [a for a, w in cells if w == width]
        out[width] = _cell_rows(config, width, acts, solved, final_loss, diverged)
        done = f"width {width} done (compiled in {study.compile_seconds[width]:.2f} s)"
        if cells_dir is not None:
            path = _write_block(cells_dir, config, width, acts, out[width])
            done += f": wrote {os.path.relpath(path, os.path.dirname(cells_dir))}"
        log(done)

    study = make_study(config, cells, xor())
    k = len(study.programs)
    log(f"the study: {len(cells)} cells x {seeds} seeds, {k} program{'s' * (k != 1)} (one per width, widest "
        f"first), each training on {len(jax.devices())} device(s) as soon as it is compiled ...")
    t0 = time.perf_counter()
    study.run(jax.random.key(config.seed), on_width=finished)
    timing["compile_seconds"] = sum(study.compile_seconds.values())
    timing["seconds"] = time.perf_counter() - t0
    return out


def _cell_rows(config, width: int, acts, solved, final_loss, diverged) -> list[dict]:
    """One row per activation of one width, from its ``(len(acts), seeds)`` results."""
    rows = []
    seeds = config.seeds
    for act, ok, loss, div in zip(acts, np.asarray(solved), np.asarray(final_loss), np.asarray(diverged)):
        k = int(ok.sum())
        lo, hi = wilson_interval(k, seeds)
        finite = np.asarray(loss, np.float64)[~div]
        rows.append({"width": int(width), "activation": act, "init": config.init, "seeds": seeds, "solved": k,
                     "success_rate": k / seeds, "ci_low": lo, "ci_high": hi, "diverged": int(div.sum()),
                     "final_loss_median": float(np.median(finite)) if finite.size else float("nan")})
    return rows


# ---------------------------------------------------------------------------------------------------
# Cell blocks: one file per width, reused by a rerun of the same study
# ---------------------------------------------------------------------------------------------------


def block_path(cells_dir: str, width: int) -> str:
    """Where the block of ``width`` lives: ``cells_dir/width_W.json``."""
    return os.path.join(cells_dir, f"width_{int(width)}.json")


def block_fingerprint(config, width: int, activations: Sequence[str]) -> dict:
    """What a block's rows depend on: every training field of ``config`` (the seed count among them)
    but the per-cell ``width``/``activation`` and ``progress_every``, the width, the activations trained
    at it, and the block format. JSON-ready, compared field by field."""
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    fields = {k: v for k, v in d.items() if k not in _NOT_FINGERPRINTED}
    return json.loads(json.dumps({"format": BLOCK_FORMAT, "width": int(width), "activations": list(activations),
                                  "config": fields}))  # tuples -> lists, as read back


def _differences(found: dict, expected: dict) -> list[str]:
    out = []
    for k in expected:
        if k == "config" and isinstance(found.get(k), dict):
            a, b = found[k], expected[k]
            out += [f"config.{f} = {a.get(f, '(absent)')!r} in the block, {b.get(f, '(absent)')!r} now"
                    for f in sorted(set(a) | set(b)) if a.get(f, "(absent)") != b.get(f, "(absent)")]
        elif found.get(k) != expected[k]:
            out.append(f"{k} = {found.get(k, '(absent)')!r} in the block, {expected[k]!r} now")
    return out


def _read_block(path: str, expected: dict) -> tuple[list[dict] | None, str]:
    """``(rows, "")`` for a block of this study; ``(None, why)`` for a block of another (or unreadable)."""
    try:
        with open(path) as f:
            block = json.load(f)
        found, rows = block["fingerprint"], block["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"it cannot be read as a cell block ({type(exc).__name__}: {exc})"
    diff = _differences(found if isinstance(found, dict) else {}, expected)
    if diff:
        return None, "it was computed for another study: " + "; ".join(diff)
    if [(r.get("activation"), r.get("width")) for r in rows] != [(a, expected["width"]) for a in
                                                                   expected["activations"]]:
        return None, "its rows do not match its fingerprint"
    return rows, ""


def _reusable_blocks(cells_dir, config, widths, activations, replace_stale, log) -> dict[int, list[dict]]:
    """The rows of every block in ``cells_dir`` that belongs to this study; all checked before any training."""
    done, stale = {}, []
    for width in widths:
        path = block_path(cells_dir, width)
        if not os.path.exists(path):
            continue
        rows, why = _read_block(path, block_fingerprint(config, width, activations))
        if rows is None:
            stale.append(f"{path}: {why}")
        else:
            done[width] = rows
    if stale and not replace_stale:
        raise ValueError("cell blocks of another study are in the way (delete them, use another output "
                         "directory, or replace them: --replace_stale / replace_stale=True):\n  "
                         + "\n  ".join(stale))
    for line in stale:
        log(f"recomputing {line}")
    if done:
        log(f"reusing the finished blocks of width {', '.join(map(str, sorted(done)))} from {cells_dir}")
    return done


def _write_block(cells_dir: str, config, width: int, acts, rows: list[dict]) -> str:
    """Write one width's block whole (:func:`lecture6.rundir.write_atomically`: a reader sees the old file
    or the new one, never a part)."""
    block = {"fingerprint": block_fingerprint(config, width, acts), "rows": rows}
    return write_atomically(block_path(cells_dir, width), json.dumps(block, indent=2) + "\n")


def _remove_final_files(outdir: str, log) -> None:
    """Remove a previous table, plot and summary from ``outdir`` (``summary.json`` first)."""
    gone = []
    for name in reversed(FINAL_FILES):
        path = os.path.join(outdir, name)
        if os.path.exists(path):
            os.remove(path)
            gone.append(name)
    if gone:
        log(f"removed the previous {', '.join(reversed(gone))} from {outdir}; they are written again when "
            "every cell is done")


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
    ``outdir`` (:data:`FINAL_FILES`), each file replaced whole, ``summary.json`` last; return the paths."""
    os.makedirs(outdir, exist_ok=True)
    paths = {k: os.path.join(outdir, name) for k, name in zip(("md", "csv", "png", "json"), FINAL_FILES)}
    tmp = {k: p + ".tmp" + os.path.splitext(p)[1] for k, p in paths.items()}
    with open(tmp["md"], "w") as f:
        f.write(header + ("\n\n" if header else "") + markdown_table(rows))
    with open(tmp["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from lecture6 import plots  # matplotlib: 0.3 s, not before the study has trained

    plots.success_vs_width(rows, tmp["png"])
    write_json(tmp["json"], {**(timing or {}), "rows": rows})
    for k, p in paths.items():
        os.replace(tmp[k], p)
    return paths
