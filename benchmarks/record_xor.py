"""Record: the XOR study's table and the collapse shares of the 2-2-1 ReLU network, exactly, as users get them.

    python benchmarks/record_xor.py [--record] [--json FILE]

Seeds are deterministic, so these figures are not estimates to be checked inside intervals: they are counts
that a given jax/jaxlib computes exactly. This script computes them the way a user does:

* the table: ``scripts/xor_study.py --config configs/xor.py --seeds 10000`` run as its own process, with
  JAX's and XLA's default settings (18 cells: widths 1, 2, 3, 4, 8, 16 x relu, tanh, sigmoid);
* the collapse shares: the 10,000 networks of ``configs/xor.py`` (2-2-1 ReLU, the slides' network) trained by
  ``lecture6.runs.make_train_runs`` and, of those that solve XOR, how many map the two negative points onto
  one hidden point and how many the two positive points (``lecture6.xor.collapsed_pairs``).

With ``--record`` it writes the ``xor_exact`` section of ``benchmarks/RESULTS.md``, whose figures the README
quotes and ``tests/test_xor_exact.py`` recomputes in ``make test``; the section names the jax and jaxlib
versions the counts belong to. ``--json`` writes what was computed, for that test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from _results import Section, add_record_flag  # noqa: E402

SEEDS = 10000
CONFIG = os.path.join(ROOT, "configs", "xor.py")


def versions() -> str:
    return ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("jax", "jaxlib"))


def study_rows(seeds: int) -> list[dict]:
    """The study's rows, from ``scripts/xor_study.py`` run as a user runs it (its own process)."""
    with tempfile.TemporaryDirectory() as outdir:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "xor_study.py"), "--config", CONFIG,
                        f"--seeds={seeds}", f"--outdir={outdir}"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(os.path.join(outdir, "summary.json")) as f:
            return json.load(f)["rows"]


def collapse_counts(seeds: int) -> dict:
    """Of ``seeds`` 2-2-1 ReLU networks (``configs/xor.py``), how many solve XOR and how many of those collapse
    the negative pair, and the positive pair, onto one hidden point."""
    import jax
    import numpy as np

    from lecture6.data import xor
    from lecture6.rundir import load_config_file
    from lecture6.runs import make_train_runs
    from lecture6.xor import collapsed_pairs

    config = load_config_file(CONFIG)
    config.seeds = seeds
    runs = make_train_runs(config, xor())
    result = runs.gather(runs.train(jax.random.key(config.seed), runs.seed, runs.lr))
    solved = np.asarray(result.solved, bool)
    negative, positive = collapsed_pairs(result.params[0]["W"], result.params[0]["b"], activation=config.activation)
    return {"seeds": seeds, "solved": int(solved.sum()), "negative": int(negative[solved].sum()),
            "positive": int(positive[solved].sum())}


def cell(row: dict) -> str:
    """A table cell as the README shows it: rate and 95% Wilson interval, 4 decimals."""
    return f"{row['success_rate']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def measure(seeds: int = SEEDS) -> dict:
    rows = study_rows(seeds)
    return {"versions": versions(), "seeds": seeds,
            "cells": {f"{r['activation']}_{r['width']}": cell(r) for r in rows},
            "solved": {f"{r['activation']}_{r['width']}": r["solved"] for r in rows},
            "collapse": collapse_counts(seeds)}


def figures(measured: dict) -> dict[str, str]:
    """The section's figures (``key -> value``, without the section prefix) from :func:`measure`'s result."""
    c = measured["collapse"]
    out = dict(measured["cells"])
    out["collapse_negative"] = f"{c['negative'] / c['solved']:.0%}"
    out["collapse_positive"] = f"{c['positive'] / c['solved']:.0%}"
    out["collapse_counts"] = f"{c['negative']} and {c['positive']} of {c['solved']}"
    out["versions"] = measured["versions"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_record_flag(parser)
    parser.add_argument("--json", default=None, help="also write what was computed to this file")
    args = parser.parse_args()
    with Section("xor_exact", "The XOR study's table and the collapse shares, exact (`record_xor.py`)",
                 record=args.record) as sec:
        sec.intro = (f"`scripts/xor_study.py --seeds {SEEDS}` run as its own process with JAX's default settings, and "
                     f"the {SEEDS:,} networks of `configs/xor.py` (2-2-1 ReLU) trained by `make_train_runs`. Seeds "
                     "are deterministic: these are exact counts for the jax and jaxlib named below, recomputed by "
                     "`tests/test_xor_exact.py` in `make test`.")
        measured = measure()
        figs = figures(measured)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**measured, "figures": figs}, f, indent=2)
        print(f"{measured['versions']}; {SEEDS} seeds per cell")
        print("| width | relu | tanh | sigmoid |")
        for w in sorted({int(k.rsplit('_', 1)[1]) for k in measured["cells"]}):
            print(f"| {w} | " + " | ".join(measured["cells"][f"{a}_{w}"] for a in ("relu", "tanh", "sigmoid")) + " |")
        c = measured["collapse"]
        print(f"2-2-1 ReLU: {c['solved']} of {SEEDS} solve XOR; of those, {c['negative']} collapse the negative pair "
              f"({figs['collapse_negative']}), {c['positive']} the positive pair ({figs['collapse_positive']})")
        if c["solved"] != measured["solved"]["relu_2"]:
            raise SystemExit(f"the study's relu/2 cell solved {measured['solved']['relu_2']}, make_train_runs "
                             f"{c['solved']}: the study is not the training it claims to be")
        for key, value in figs.items():
            what = {"collapse_negative": "of the solved 2-2-1 ReLU nets, the share collapsing the negative pair",
                    "collapse_positive": "of the solved 2-2-1 ReLU nets, the share collapsing the positive pair",
                    "collapse_counts": "negative-pair and positive-pair collapses of the solved 2-2-1 ReLU nets",
                    "versions": "the jax and jaxlib these counts belong to"}.get(
                key, f"success rate [95% Wilson interval], {key.replace('_', ' width ')}")
            sec.figure(key, value, what)


if __name__ == "__main__":
    main()
