"""Benchmark: the XOR solvability study as one compiled program against a program per cell, in one run.

    python benchmarks/bench_study.py [--seeds 10000] [--repeats 1]

Both sides train the same 18 cells (widths 1, 2, 3, 4, 8, 16 x relu, tanh, sigmoid; configs/xor.py
otherwise) from the same seeds. "ours" is ``lecture6.study.solvability_study``: one program, compiled
once. "before" is the study of the code at ``benchmarks/_old_code.py:REV`` (loaded from git): one
``make_train`` program compiled per cell. Prints the wall time of each (compile included: that is what a
user waits for), ours split into compile and train, and checks that every cell's count of solved seeds
is the same on both sides.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _old_code import REV, old_lecture6  # noqa: E402

from lecture6 import study  # noqa: E402
from lecture6.rundir import load_config_file  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "xor.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side; the fastest counts")
    ap.add_argument("--skip-before", action="store_true", help="time ours only")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"before = git {REV}; {args.seeds} seeds per cell")
    config = load_config_file(CONFIG)
    best = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        rows, timing = study.solvability_study(config, seeds=args.seeds, log=lambda s: None)
        wall = time.perf_counter() - t0
        if best is None or wall < best[0]:
            best = (wall, rows, timing)
    wall, rows, timing = best
    print(f"ours:   {wall:6.2f} s  (compile {timing['compile_seconds']:.2f} s, train {timing['train_seconds']:.2f} s, "
          f"one program)")
    old = None if args.skip_before else old_lecture6("study")
    if old is not None:
        base = {k: v for k, v in config.to_dict().items() if k != "progress_every"}
        t_old = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            old_rows = old.solvability_study(base, seeds=args.seeds, log=lambda s: None)
            t_old = min(t_old or 1e9, time.perf_counter() - t0)
        print(f"before: {t_old:6.2f} s  ({len(old_rows)} programs, compile and train)")
        print(f"ratio before / ours: {t_old / wall:.1f}x")
        assert [(r["activation"], r["width"]) for r in rows] == [(o["activation"], o["width"]) for o in old_rows]
        diff = [(r["activation"], r["width"], r["solved"], o["solved"]) for r, o in zip(rows, old_rows)
                if r["solved"] != o["solved"]]
        print("solved counts: " + ("identical in every cell" if not diff else f"DIFFER in {diff}"))
    print(study.markdown_table(rows))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
