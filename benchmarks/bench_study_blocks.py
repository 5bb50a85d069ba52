"""Benchmark: what writing the XOR study's cell blocks costs (``solvability_study(..., outdir=...)``).

    python benchmarks/bench_study_blocks.py [--seeds 2000] [--repeats 3]

Both sides run the same study (widths 1, 2, 3, 4, 8, 16 x relu, tanh, sigmoid; configs/xor.py otherwise)
in one process, alternating, each compiled afresh. "plain": ``solvability_study(config, seeds=...)``.
"blocks": the same with ``outdir`` (a fresh temporary directory each time), which writes each width's
rows as ``cells/width_W.json`` the moment that width finishes, on the host, while the next widths train.
Prints the median compiling (``compile_seconds``), compiling-and-training (``seconds``) and total seconds
of each side and checks that both give the same rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lecture6 import study  # noqa: E402
from lecture6.rundir import load_config_file  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "xor.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating; medians reported")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{args.seeds} seeds per cell, {args.repeats} alternating repeats")
    config = load_config_file(CONFIG)
    times = {"plain": [], "blocks": []}
    rows = {}
    for r in range(args.repeats):
        for side in (("plain", "blocks") if r % 2 == 0 else ("blocks", "plain")):
            with tempfile.TemporaryDirectory() as tmp:
                outdir = os.path.join(tmp, "study") if side == "blocks" else None
                t0 = time.perf_counter()
                rows[side], timing = study.solvability_study(config, seeds=args.seeds, log=lambda s: None,
                                                             outdir=outdir)
                wall = time.perf_counter() - t0
                if outdir is not None:
                    assert len(os.listdir(os.path.join(outdir, study.CELLS_DIR))) == len(study.WIDTHS)
            times[side].append((timing["compile_seconds"], timing["seconds"], wall))
    for side, ts in times.items():
        c, t, w = (statistics.median(x) for x in zip(*ts))
        print(f"{side:6s}: compiling {c:6.2f} s  compiling and training {t:6.2f} s  total {w:6.2f} s   (per "
              f"repeat: {', '.join(f'{x[1]:.2f}' for x in ts)})")
    ratio = statistics.median(x[1] for x in times["blocks"]) / statistics.median(x[1] for x in times["plain"])
    print(f"compiling and training, blocks / plain: {ratio:.2f}")
    print("rows: " + ("identical" if rows["plain"] == rows["blocks"] else "DIFFER"))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
