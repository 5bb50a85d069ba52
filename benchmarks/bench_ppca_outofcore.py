"""PPCA on a file larger than memory: a 2,000,000 x 784 float32 .npy (6.3 GB) fitted chunk by chunk.

    python benchmarks/bench_ppca_outofcore.py                 # writes the file in --dir (default /tmp)
    python benchmarks/bench_ppca_outofcore.py --rows 200000   # a quick check (627 MB)
    python benchmarks/bench_ppca_outofcore.py --record        # and write its section of benchmarks/RESULTS.md

Every step runs in its own fresh subprocess, started by a driver that holds no data (a child's
``ru_maxrss`` starts from its parent's resident size at fork, so a large parent would inflate it);
the kernel's own per-process high-water mark ``VmHWM`` is printed beside it. Steps, each timed:
1. write the file (low-rank PPCA data, q_true = 50, drawn 50,000 rows at a time with NumPy), fsync,
   and evict its pages from the page cache (``posix_fadvise(DONTNEED)``), so the fit reads the disk;
2. ``ppca.moments_chunks(data.npy_chunks(path, key=k, part="train"))`` (held-out rows by
   ``train_test_split``'s rule, 20%), the closed form from the moments, then one pass over the
   held-out rows (``ppca.average_log_likelihood_chunks``); peak resident memory from
   ``resource.getrusage(RUSAGE_SELF).ru_maxrss``;
3. for contrast, one pass over the file through one long-lived ``np.load(mmap_mode="r")`` map (the
   pages it touches stay mapped and count as resident -- why ``npy_chunks`` maps each chunk apart);
4. the in-memory fit of a slice (the first ``--slice`` rows loaded into RAM, ``ppca.fit_closed_form``).
The file is deleted at the end (also on error). Prints times, rows per second and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag, sci  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D, Q = 784, 50
INTRO = """\
{rows:,} × 784 float32 `.npy` (low-rank PPCA data, q_true = 50), written to `{dir}`, evicted from the page cache
(`posix_fadvise(DONTNEED)`) and fitted with `ppca.moments_chunks(data.npy_chunks(path, key=k, part="train"))`
+ `fit_closed_form_from_moments` (20% held out by `train_test_split`'s rule), then one pass over the held-out
rows; each step in its own subprocess started by a driver that holds no data, peak memory from
`getrusage(RUSAGE_SELF).ru_maxrss` (and the kernel's `VmHWM`). Chunks of 32 MiB of file rows, each through its
own memory map; float32 rows are accumulated in float64. `make bench` does not rerun this one (`make
bench-outofcore` does)."""

CHILD = r"""
import json, os, resource, sys, time
import numpy as np

mode, path, n, q = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
D, Q_TRUE = 784, 50


def peak():  # GiB: getrusage's high-water mark, and the kernel's VmHWM of this process
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, hwm / 2**20


if mode == "write":  # low-rank PPCA rows (q_true = 50, noise variance 0.1), 50,000 at a time
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((D, Q_TRUE)) * np.linspace(3.0, 0.5, Q_TRUE)).astype(np.float32)
    b = rng.standard_normal(D).astype(np.float32)
    t_gen = t_io = 0.0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, D)})
        for start in range(0, n, 50_000):
            t0 = time.perf_counter()
            k = min(50_000, n - start)
            X = rng.standard_normal((k, Q_TRUE), dtype=np.float32) @ W.T + b
            X += np.float32(np.sqrt(0.1)) * rng.standard_normal((k, D), dtype=np.float32)
            t1 = time.perf_counter()
            f.write(X.tobytes())
            t_gen, t_io = t_gen + t1 - t0, t_io + time.perf_counter() - t1
        t0 = time.perf_counter()
        f.flush()
        os.fsync(f.fileno())
        t_io += time.perf_counter() - t0
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    print(json.dumps({"generate_s": t_gen, "write_s": t_io}))
    sys.exit(0)

import jax
jax.config.update("jax_enable_x64", True)
from lecture6 import data, ppca

out = {"peak_gib_after_imports": peak()}
key = jax.random.key(0)
t0 = time.perf_counter()
if mode == "chunks":
    mean, S, n_train = ppca.moments_chunks(data.npy_chunks(path, key=key, part="train"))
    model = ppca.fit_closed_form_from_moments(mean, S, q)
    out.update(fit_s=time.perf_counter() - t0, n_train=n_train, peak_gib_after_fit=peak(),
               train_loglik=float(ppca.log_likelihood_from_moments(model, mean, S)))
    t1 = time.perf_counter()
    ll, n_test = ppca.average_log_likelihood_chunks(model, data.npy_chunks(path, key=key, part="test"))
    out.update(heldout_s=time.perf_counter() - t1, n_test=n_test, test_loglik=ll)
elif mode == "one_map":  # the same file through one long-lived map: a pass of sums, no fit
    X = np.load(path, mmap_mode="r")
    total = 0.0
    for start in range(0, X.shape[0], 10_000):
        total += float(X[start:start + 10_000].sum(dtype=np.float64))
    out.update(pass_s=time.perf_counter() - t0, checksum=total)
else:  # "slice": the first n rows in memory, through the in-memory public API
    X = np.array(np.load(path, mmap_mode="r")[:n])
    out["load_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    model = ppca.fit_closed_form(X, q)
    out.update(fit_s=time.perf_counter() - t1, n_train=n)
out["peak_gib"] = peak()
print(json.dumps(out))
"""


def child(mode: str, path: str, n: int = 0) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(n), str(Q)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{mode} subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mib(peak) -> str:
    ru_maxrss, hwm = peak
    return f"{ru_maxrss * 1024:.0f} MiB (VmHWM {hwm * 1024:.0f} MiB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--slice", type=int, default=200_000, help="rows of the in-memory comparison")
    parser.add_argument("--dir", default="/tmp")
    add_record_flag(parser)
    args = parser.parse_args()
    title = "PPCA out of core: a file larger than memory, chunk by chunk (`benchmarks/bench_ppca_outofcore.py`)"
    with Section("ppca_outofcore", title, record=args.record) as sec:
        sec.intro = INTRO.format(rows=args.rows, dir=args.dir)
        run(sec, args)


def run(sec, args) -> None:
    size = args.rows * D * 4
    free = shutil.disk_usage(args.dir).free
    print(f"{args.rows} x {D} float32 = {size / 1e9:.2f} GB in {args.dir} ({free / 1e9:.0f} GB free); "
          f"{os.cpu_count()} CPUs")
    if free < 1.5 * size:
        raise SystemExit(f"not enough room in {args.dir}: need {1.5 * size / 1e9:.1f} GB, have {free / 1e9:.1f}")
    path = os.path.join(args.dir, f"ppca_outofcore_{os.getpid()}.npy")
    try:
        written = child("write", path, args.rows)
        print(f"generating the rows: {written['generate_s']:.1f} s; writing + fsync: {written['write_s']:.1f} s "
              f"({size / written['write_s'] / 1e6:.0f} MB/s)")
        chunks = child("chunks", path)
        fit_rate = chunks["n_train"] / chunks["fit_s"]
        print(f"chunked fit (file evicted from the page cache first), n_train={chunks['n_train']}: "
              f"{chunks['fit_s']:.1f} s ({fit_rate / 1e6:.3f} M rows/s); held-out pass n_test={chunks['n_test']}: "
              f"{chunks['heldout_s']:.1f} s; peak RSS {mib(chunks['peak_gib'])}; after imports "
              f"{mib(chunks['peak_gib_after_imports'])}, after the fit {mib(chunks['peak_gib_after_fit'])}")
        print(f"  avg log-likelihood: train {chunks['train_loglik']:.4f}, held-out {chunks['test_loglik']:.4f}")
        one_map = child("one_map", path)
        print(f"for contrast, one long-lived np.load(mmap_mode='r') map, a pass of sums only: "
              f"{one_map['pass_s']:.1f} s, peak RSS {mib(one_map['peak_gib'])}")
        sl = child("slice", path, args.slice)
        slice_rate = sl["n_train"] / sl["fit_s"]
        print(f"in-memory fit_closed_form of the first {sl['n_train']} rows: {sl['fit_s']:.2f} s "
              f"({slice_rate / 1e6:.3f} M rows/s; loading them {sl['load_s']:.1f} s), peak RSS {mib(sl['peak_gib'])}")
        print(f"chunked / in-memory time per row: {slice_rate / fit_rate:.2f}; chunked peak RSS under 1 GiB "
              f"(both measures): {max(chunks['peak_gib']) < 1.0}")
    finally:
        if os.path.exists(path):
            os.remove(path)
            print(f"deleted {path}")
    peak = sec.figure("peak", f"{max(chunks['peak_gib']) * 1024:.0f} MiB",
                      "peak resident memory of the chunked fit and held-out pass (the larger of ru_maxrss and VmHWM)")
    fit_s = sec.figure("fit_s", f"{chunks['fit_s']:.0f} s", "seconds of the chunked fit (moments + closed form)")
    n_train = sec.figure("n_train", sci(chunks["n_train"]), "training rows of the chunked fit")
    one_map_mib = max(one_map["peak_gib"]) * 1024
    text = (f"**Peak resident memory {peak}** for the {size / 1e9:.1f} GB file (target < 1 GB: "
            f"{'met' if max(chunks['peak_gib']) < 1.0 else 'NOT met'}), of which "
            f"{max(chunks['peak_gib_after_imports']) * 1024:.0f} MiB is the interpreter with jax imported. ")
    if one_map_mib > 2 * max(chunks["peak_gib"]) * 1024:
        text += ("**One map per chunk is what keeps it small:** the same file read through one long-lived "
                 f"`np.load(mmap_mode=\"r\")` map reached {one_map_mib:.0f} MiB resident — every page touched stays "
                 "mapped and counts.")
    else:
        text += f"One long-lived `np.load(mmap_mode=\"r\")` map of the same file reached {one_map_mib:.0f} MiB."
    sec.note(text)
    per_row = slice_rate / fit_rate
    sec.note(f"**Time: {fit_s} for {n_train} rows**, {per_row:.1f}× the in-memory time per row of a "
             f"{sl['n_train']:,}-row slice ({sl['fit_s']:.1f} s)"
             + (". The chunked run also reads the file from disk and copies each chunk once; the split between "
                "these causes is not measured here." if per_row > 1 else "."))
    sec.summary(f"`bench_ppca_outofcore.py`: {args.rows:,} × 784 float32 `.npy` ({size / 1e9:.1f} GB) fitted chunk "
                "by chunk", "peak resident memory < 1 GB", f"{peak}; {fit_s} for {n_train} training rows")


if __name__ == "__main__":
    main()
