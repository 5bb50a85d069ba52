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

from lecture6 import ppca, sharding  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--quick", action="store_true", help="n = 20,000 rows (a quick check)")
    parser.add_argument("--repeats", type=int, default=5)
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


if __name__ == "__main__":
    main()
