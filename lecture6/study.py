"""The XOR solvability study: how often does gradient descent solve XOR, by hidden width and activation?

For every (width, activation) pair, :func:`solvability_study` trains ``seeds`` networks with
:func:`lecture6.train.make_train` (one compiled program per pair) and counts the seeds whose four outputs
all end within 0.5 of their targets. :func:`wilson_interval` gives the 95% confidence interval of each
rate; :func:`write_study` writes the table (Markdown and CSV) and the plot of success against width.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from lecture6 import plots
from lecture6.data import xor
from lecture6.train import diverged_report, make_train, validate_config

WIDTHS = (1, 2, 3, 4, 8, 16)
ACTIVATIONS = ("relu", "tanh", "sigmoid")
Z95 = 1.959963984540054  # the 97.5% standard normal quantile


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% for the default ``z``).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at ``k = 0`` or ``k = n``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp: the interval contains p (rounding can push an end a hair past it at k = 0 or k = n)
    return max(0.0, min(p, center - half)), min(1.0, max(p, center + half))


def solvability_study(base_config, *, widths: Sequence[int] = WIDTHS,
                      activations: Sequence[str] = ACTIVATIONS, seeds: int = 10000,
                      log: Callable[[str], None] = print) -> list[dict]:
    """Train ``seeds`` XOR networks for every width x activation; one row per pair.

    ``base_config`` holds every other training field (init, lr, epochs, ...). Each row: ``width``,
    ``activation``, ``init``, ``seeds``, ``solved``, ``success_rate``, ``ci_low``, ``ci_high``,
    ``diverged``, ``final_loss_median``, ``seconds`` (compile and train).
    """
    X, y = xor()
    base = dict(base_config.to_dict() if hasattr(base_config, "to_dict") else base_config)
    rows = []
    for activation in activations:
        for width in widths:
            cfg = dict(base, width=int(width), activation=activation, seeds=int(seeds))
            validate_config(cfg)
            t0 = time.perf_counter()
            res = jax.block_until_ready(make_train(cfg, (X, y))(jax.random.key(cfg.get("seed", 0))))
            seconds = time.perf_counter() - t0
            solved = int(np.sum(np.asarray(res.solved)))
            lo, hi = wilson_interval(solved, seeds)
            ok = ~np.asarray(res.diverged)
            final = np.asarray(res.final_loss, dtype=np.float64)[ok]
            row = {
                "width": int(width), "activation": activation, "init": cfg.get("init", "he"),
                "seeds": int(seeds), "solved": solved, "success_rate": solved / seeds,
                "ci_low": lo, "ci_high": hi, "diverged": diverged_report(res)["count"],
                "final_loss_median": float(np.median(final)) if final.size else float("nan"),
                "seconds": seconds,
            }
            rows.append(row)
            log(f"{activation:8s} width {width:3d}: solved {solved}/{seeds} = {solved / seeds:.3f} "
                f"[{lo:.3f}, {hi:.3f}]  diverged {row['diverged']}  ({seconds:.1f} s)")
    return rows


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


def write_study(rows: list[dict], outdir: str, *, header: str = "") -> dict:
    """Write ``study.md``, ``study.csv`` and ``success_vs_width.png`` into ``outdir``; return the paths."""
    os.makedirs(outdir, exist_ok=True)
    paths = {k: os.path.join(outdir, name) for k, name in
             (("md", "study.md"), ("csv", "study.csv"), ("png", "success_vs_width.png"))}
    tmp_md, tmp_csv = paths["md"] + ".tmp", paths["csv"] + ".tmp"
    with open(tmp_md, "w") as f:
        f.write(header + ("\n\n" if header else "") + markdown_table(rows))
    with open(tmp_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp_png = paths["png"] + ".tmp.png"
    plots.success_vs_width(rows, tmp_png)
    for key, tmp in (("md", tmp_md), ("csv", tmp_csv), ("png", tmp_png)):
        os.replace(tmp, paths[key])
    return paths
