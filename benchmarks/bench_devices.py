"""One device against four: the same jitted programs with their data split over a mesh, in one process.

    python benchmarks/bench_devices.py                      # PPCA moments: n = 100,000, d = 784, float64
    python benchmarks/bench_devices.py --quick --dtype float32
    python benchmarks/bench_devices.py --record          # and write the run's section of benchmarks/RESULTS.md

On a CPU, XLA is told to make 4 host devices (``--xla_force_host_platform_device_count=4``, set here
before JAX starts); on an accelerator the devices are the real ones, as many as there are, up to 4.
Each program runs with its data on a mesh of the first device only and on a mesh of all of them (same
process, same data, interleaved repeats, median times), and the results are compared.

* PPCA moments (``lecture6.ppca.moments`` of a ``jax.Array``: mean and X^T X): rows split over the
  ``data`` axis; XLA computes each device's partial sums and one all-reduce. The one-off placement of
  the rows on the mesh is timed separately.

Host devices share the machine's cores (and one process's thread pool): on a 2-core CPU four of them
cannot be faster than one; what this shows there is that the sharded program is correct and what the
split costs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag, times  # noqa: E402

from lecture6 import ppca, sharding, study  # noqa: E402
from lecture6.data import xor  # noqa: E402
from lecture6.rundir import load_config_file  # noqa: E402

XOR_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "xor.py")


def _median_seconds(fn, repeats):
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_ppca_moments(meshes, n, d, dtype, repeats):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((n, 20)) @ rng.standard_normal((20, d)) + rng.standard_normal((n, d))).astype(dtype)
    rows = []
    placed = {}
    for label, mesh in meshes.items():
        t0 = time.perf_counter()
        placed[label] = jax.block_until_ready(sharding.shard_rows(X, mesh))
        rows.append({"label": label, "place_s": time.perf_counter() - t0})
    results = {}
    times = {label: [] for label in meshes}
    for label in meshes:
        results[label] = jax.block_until_ready(ppca.moments(placed[label]))  # compile and warm up
    for _ in range(repeats):
        for label in meshes:
            t0 = time.perf_counter()
            jax.block_until_ready(ppca.moments(placed[label]))
            times[label].append(time.perf_counter() - t0)
    ref_mean, ref_S = (np.asarray(a) for a in results[next(iter(meshes))])
    for row in rows:
        mean, S = (np.asarray(a) for a in results[row["label"]])
        row["seconds"] = statistics.median(times[row["label"]])
        row["max_rel_diff"] = float(max(np.max(np.abs(mean - ref_mean)) / np.max(np.abs(ref_mean)),
                                        np.max(np.abs(S - ref_S)) / np.max(np.abs(ref_S))))
    return rows


def bench_study(devices, seeds, repeats):
    """The study's programs (one per width) on a ``runs`` mesh of 1 device and of all ``devices``: compile seconds,
    median train seconds (interleaved repeats) and the largest difference from the 1-device run."""
    config = load_config_file(XOR_CONFIG)
    config.seeds = seeds
    cells = [(a, w) for a in study.ACTIVATIONS for w in study.WIDTHS]
    key = jax.random.key(config.seed)
    meshes = {"1 device": devices[:1]}
    if len(devices) > 1:
        meshes[f"{len(devices)} devices"] = devices
    rows, compiled, results = [], {}, {}
    for label, devs in meshes.items():
        program = study.make_study(config, cells, xor(), mesh=sharding.make_mesh(sharding.RUNS, devices=devs))
        t0 = time.perf_counter()
        compiled[label] = program.compile(key)
        rows.append({"label": label, "compile_s": time.perf_counter() - t0})
    times = {label: [] for label in meshes}
    for _ in range(repeats):
        for label in meshes:
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled[label](key))
            times[label].append(time.perf_counter() - t0)
            results[label] = [np.asarray(a)[:, :seeds] for a in out]
    ref = results["1 device"]
    for row in rows:
        got = results[row["label"]]
        row["seconds"] = statistics.median(times[row["label"]])
        row["same_verdicts"] = bool(np.array_equal(got[0], ref[0]) and np.array_equal(got[2], ref[2]))
        row["max_loss_diff"] = float(np.max(np.abs(got[1].astype(np.float64) - ref[1])))
    return rows, len(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="n = 20,000 rows (a quick check)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--study-seeds", type=int, default=None,
                        help="seeds per study cell (default 10,000; 1,000 with --quick; 0 skips the study)")
    parser.add_argument("--study-repeats", type=int, default=3)
    add_record_flag(parser)
    args = parser.parse_args()
    with Section("devices", "One device against four (`benchmarks/bench_devices.py`)", record=args.record) as sec:
        sec.intro = ("The same jitted program with its data on a mesh of 1 and of 4 devices, in one process (on a CPU, "
                     "`--xla_force_host_platform_device_count=4`), same data, interleaved repeats, median times.")
        run(sec, args)


def run(sec, args) -> None:
    devices = jax.devices()
    k = min(4, len(devices))
    meshes = {"1 device": sharding.make_mesh(devices=devices[:1])}
    if k > 1:
        meshes[f"{k} devices"] = sharding.make_mesh(devices=devices[:k])
    n, d = (20_000, 784) if args.quick else (100_000, 784)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}, {len(devices)} "
          f"{jax.default_backend()} devices ({devices[0].device_kind})")
    print(f"\nPPCA moments (mean and (1/n) covariance, jitted), n={n:,}, d={d}, {args.dtype}, "
          f"rows split over the 'data' axis; median of {args.repeats} interleaved repeats\n")
    rows = bench_ppca_moments(meshes, n, d, np.dtype(args.dtype), args.repeats)
    base = rows[0]["seconds"]
    print("| mesh | place rows s | moments s | 1 device / this | max rel. diff vs 1 device |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['label']} | {r['place_s']:.3f} | {r['seconds']:.4f} | {base / r['seconds']:.2f}x | "
              f"{r['max_rel_diff']:.1e} |")
    if len(rows) < 2:
        sec.note("Only one device: nothing to compare.")
        return
    study_rows(sec, args, devices[:k])
    speedup = sec.figure("speedup", times(base / rows[-1]["seconds"], 3),
                         f"PPCA moments, 1 device / {k} devices, seconds (median)")
    diff = sec.figure("max_rel_diff", f"{rows[-1]['max_rel_diff']:.1e}",
                      f"max relative difference of the moments on {k} devices and on 1")
    if jax.default_backend() == "cpu" and (os.cpu_count() or 1) < 2 * k:
        sec.note(f"{k} virtual devices on {os.cpu_count()} cores share the same cores (and XLA's thread pool), so "
                 f"the split cannot be much faster than one device: {speedup} here. What the run shows is that the "
                 f"sharded program is correct ({diff} relative to one device; the order of the additions differs) "
                 "and what the split costs. (XLA's float64 XᵀX is far slower on this CPU than NumPy's BLAS `syrk`, "
                 "which is why NumPy input takes the host route in `lecture6.ppca`; `bench_ppca.py` times the two "
                 "routes side by side.)")
    else:
        sec.note(f"1 device / {k} devices: {speedup}; the sharded result agrees with one device to {diff}.")


def study_rows(sec, args, devices) -> None:
    """The XOR study's programs on 1 device and on all ``devices``: times, and whether every seed's
    verdict and final loss are the 1-device ones."""
    seeds = args.study_seeds if args.study_seeds is not None else (1_000 if args.quick else 10_000)
    if not seeds:
        return
    print(f"\nXOR study (configs/xor.py, float32), {seeds:,} seeds per cell, seeds split over the 'runs' "
          f"axis; compile once, median of {args.study_repeats} interleaved training repeats\n")
    rows, n_cells = bench_study(devices, seeds, args.study_repeats)
    base = rows[0]["seconds"]
    print("| mesh | cells x seeds | compile s | train s | 1 device / this | verdicts as 1 device | "
          "max final-loss diff |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['label']} | {n_cells} x {seeds:,} | {r['compile_s']:.2f} | {r['seconds']:.2f} | "
              f"{base / r['seconds']:.2f}x | {'yes' if r['same_verdicts'] else 'NO'} | {r['max_loss_diff']:.1e} |")
    k = len(devices)
    ratio = sec.figure("study_ratio", times(base / rows[-1]["seconds"], 2),
                       f"XOR study training, 1 device / {k} devices, seconds (median)")
    same = sec.figure("study_same", "yes" if all(r["same_verdicts"] and r["max_loss_diff"] == 0 for r in rows)
                      else "no", f"every seed's verdict and final loss on {k} devices equal to 1 device's")
    sec.note(f"XOR study, {n_cells} cells x {seeds:,} seeds: 1 device / {k} devices = {ratio}; every seed the same "
             f"as on one device: {same}. On a CPU the {k} virtual devices share its cores, so a ratio above 1 is "
             "not extra compute: the split program is a different schedule of the same work.")


if __name__ == "__main__":
    main()
