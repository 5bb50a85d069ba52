"""Record `make demo` as a newcomer runs it: each step timed, and the numbers the docs quote, read from the
files the steps write.

    python benchmarks/record_demo.py [--record] [--skip-extras]

Runs the recipe of the Makefile's ``demo`` target, line by line (read from the Makefile, so it is the same
commands), then the extra commands the docs quote (PPCA on the 8x8 digits and on faces, the MNIST network on
two other splits), each in its own process from the repository root, with an empty compilation cache for
the whole run (``JAX_COMPILATION_CACHE_DIR`` set to a fresh folder), as on a fresh clone after installation.
For each step it records the wall seconds and the CPU seconds (user + system, all cores, from
``getrusage`` of the finished child) and prints what the step printed.

Then it reads the workdirs' own ``summary.json`` and ``metrics.json`` and lists their
numbers as figures: the README and ``docs/`` quote them by key (``<!-- figure: demo.KEY -->``).
``--record`` writes ``benchmarks/results/demo.md`` and reassembles ``benchmarks/RESULTS.md``
(``benchmarks/collect.py``). ``make demo-record`` runs it with ``--record``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKEFILE = os.path.join(ROOT, "Makefile")

#: A short name for each `make demo` step, in the Makefile's order, and what it is in words.
DEMO_STEPS = [("audit", "`python -m lecture6.audit` (every claim of the slides)"),
              ("ppca_mnist", "PPCA on MNIST (`runs/ppca_mnist`)"),
              ("softmax_mnist", "softmax network on MNIST (`runs/softmax_mnist`)"),
              ("xor", "XOR, 1,000 seeds (`runs/xor`)"),
              ("digits", "softmax network on the 8×8 digits (`runs/digits`)")]

_PPCA = ["scripts/fit_ppca.py", "--config", "configs/ppca.py"]
_MNIST = ["scripts/train_digits.py", "--config", "configs/digits.py", "--config.dataset=mnist", "--config.seeds=16"]
#: The commands the docs quote beside `make demo`: (name, what, arguments after the interpreter).
EXTRAS = [("ppca_digits", "PPCA on the 8×8 digits",
           [*_PPCA, "--config.dataset=digits", "--workdir", "runs/ppca_digits"]),
          ("ppca_faces", "PPCA on faces", [*_PPCA, "--config.dataset=faces", "--workdir", "runs/ppca_faces"]),
          ("mnist_seed1", "MNIST network, split and weights of seed 1, 16 seeds",
           [*_MNIST, "--config.seed=1", "--workdir", "runs/softmax_mnist_seed1"]),
          ("mnist_seed2", "MNIST network, split and weights of seed 2, 16 seeds",
           [*_MNIST, "--config.seed=2", "--workdir", "runs/softmax_mnist_seed2"])]


def demo_recipe(makefile: str = MAKEFILE) -> list[list[str]]:
    """The command lines of the Makefile's ``demo`` target, ``$(PY)`` replaced by this interpreter."""
    with open(makefile, encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    if not match:
        raise ValueError(f"{makefile}: no 'demo:' target with a recipe")
    lines = [line.strip() for line in match.group(1).splitlines()]
    if len(lines) != len(DEMO_STEPS) or not all(line.startswith("$(PY) ") for line in lines):
        raise ValueError(f"{makefile}: the demo recipe has changed ({lines}); update DEMO_STEPS in {__file__}")
    return [[sys.executable, *line.split()[1:]] for line in lines]


def run_step(argv: list[str], env: dict) -> dict:
    """Run one command from the repository root; its wall and CPU seconds, exit code and output."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rc": proc.returncode, "output": proc.stdout,
            "load": (load, os.getloadavg()[0])}


def _read(path: str):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return json.load(f)


def _seconds(x: float) -> str:
    return f"{x:.1f} s"


def training_figures(sec: Section, name: str, workdir: str, *, per_run: bool = True) -> None:
    """A `train_digits.py` workdir's accuracies: held-out mean (and each seed), the final training accuracy."""
    summary = _read(f"{workdir}/summary.json")
    sec.figure(f"{name}_test_acc", f"{summary['test_accuracy_mean']:.4f}",
               f"{workdir}/summary.json test_accuracy_mean: held-out accuracy, mean over the seeds")
    sec.figure(f"{name}_test_acc_3", f"{summary['test_accuracy_mean']:.3f}", "the same to 3 decimals")
    sec.figure(f"{name}_test_acc_min", f"{summary['test_accuracy_min']:.3f}", f"{workdir}: the lowest seed's")
    if per_run:
        sec.figure(f"{name}_test_acc_runs", ", ".join(f"{a:.3f}" for a in summary["test_accuracy_per_run"]),
                   f"{workdir}/summary.json test_accuracy_per_run")
        last = summary["final_accuracy_mean"]
        sec.figure(f"{name}_train_acc", f"{last:.3f}", f"{workdir}/summary.json final_accuracy_mean: the training "
                   "accuracy after the last epoch, mean over the seeds")
        sec.figure(f"{name}_train_acc_2", f"{last:.2f}", "the same to 2 decimals")
        sec.figure(f"{name}_compile_s", _seconds(summary["compile_seconds"]),
                   f"{workdir}/summary.json compile_seconds")


def ppca_figures(sec: Section, name: str, workdir: str) -> dict:
    """A `fit_ppca.py` workdir's log-likelihoods (nats per sample), bits per dimension and the held-out curve."""
    m = _read(f"{workdir}/metrics.json")
    for method in ("closed_form", "em", "gradient"):
        for split in ("train", "test"):
            sec.figure(f"{name}_{method}_{split}", f"{m[method][f'{split}_loglik']:.4f}",
                       f"{workdir}/metrics.json {method}.{split}_loglik, nats per sample")
    sec.figure(f"{name}_closed_form_test_bits", f"{m['closed_form']['test_bits_per_dim']:.3f}",
               f"{workdir}/metrics.json closed_form.test_bits_per_dim")
    best = max(m["heldout"], key=lambda row: row["test_loglik"])
    sec.figure(f"{name}_best_q", str(best["q"]), f"{workdir}/metrics.json: the q of the best held-out "
               "log-likelihood")
    sec.figure(f"{name}_best_bits", f"{best['test_bits_per_dim']:.3f}", "its held-out bits per dimension")
    sec.figure(f"{name}_best_bits_2", f"{best['test_bits_per_dim']:.2f}", "the same to 2 decimals")
    after = [row["test_loglik"] for row in m["heldout"] if row["q"] >= best["q"]]
    sec.figure(f"{name}_flat_after_best", f"{max(after) - min(after):.3f}",
               "the largest minus the smallest held-out log-likelihood at q from the best up, nats per sample")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-extras", action="store_true", help="time the `make demo` steps only (figures of the "
                    "extra commands left out)")
    add_record_flag(ap)
    args = ap.parse_args()
    if args.skip_extras and args.record:
        ap.error("--skip-extras leaves out figures the docs quote: a partial run is printed, never recorded")
    cache = tempfile.mkdtemp(prefix="lecture6-demo-cache-")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache)
    steps = list(zip(DEMO_STEPS, demo_recipe()))
    extras = [] if args.skip_extras else [((name, what), [sys.executable, *argv]) for name, what, argv in EXTRAS]
    title = "`make demo` as a newcomer runs it (`benchmarks/record_demo.py`)"
    try:
        with Section("demo", title, record=args.record) as sec:
            sec.intro = ("The steps of `make demo` (the Makefile's recipe, read from it), then the extra commands the "
                         "docs quote, each in its own process from the repository root, one after another, with one "
                         "empty compilation cache for the whole run, as on a fresh clone after installation. Wall "
                         "seconds from start to exit; CPU seconds are user + system of the finished process, all "
                         "cores together. The numbers below the timings are read from the files the steps wrote. "
                         "The box is shared with other work: the load average before and after each step is "
                         "printed beside it, and the times grow with it.")
            results = {}
            for (name, _), argv in steps + extras:
                rel = " ".join(["python", *argv[1:]])
                print(f"\n$ {rel}")
                r = run_step(argv, env)
                print(r["output"].rstrip("\n"))
                print(f"[{name}: exit {r['rc']}, {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, load average "
                      f"{r['load'][0]:.2f} before, {r['load'][1]:.2f} after]")
                if r["rc"] != 0:
                    raise SystemExit(f"record_demo: {rel} exited with {r['rc']}; nothing recorded")
                results[name] = r
            demo = [results[name] for (name, _), _ in steps]
            wall, cpu = sum(r["wall"] for r in demo), sum(r["cpu"] for r in demo)
            loads = [x for r in demo for x in r["load"]]
            print("\n| step | wall | CPU (user + sys) |\n|---|---:|---:|")
            for (name, what), _ in steps:
                w = sec.figure(f"{name}_wall_s", _seconds(results[name]["wall"]), f"wall seconds of {what}")
                c = sec.figure(f"{name}_cpu_s", _seconds(results[name]["cpu"]), f"CPU seconds of {what}")
                print(f"| {what} | {w} | {c} |")
            w = sec.figure("wall_s", _seconds(wall), "wall seconds of the whole `make demo`, the steps' sum")
            c = sec.figure("cpu_s", _seconds(cpu), "CPU seconds of the whole `make demo`, the steps' sum")
            print(f"| `make demo` | {w} | {c} |")
            load = sec.figure("load", f"{min(loads):.1f}–{max(loads):.1f}",
                              "the 1-minute load average, lowest and highest seen before and after the steps")
            sec.note(f"`make demo` took {w} of wall time and {c} of CPU time, with the 1-minute load average "
                     f"between {load} (this box has {os.cpu_count()} cores): the box was shared with other work, so "
                     "the times are longer than an idle box's.")

            training_figures(sec, "mnist", "runs/softmax_mnist")
            training_figures(sec, "digits", "runs/digits")
            xor = _read("runs/xor/summary.json")
            sec.figure("xor_solved", f"{xor['success_rate']:.3f}", "runs/xor/summary.json success_rate")
            m = ppca_figures(sec, "ppca_mnist", "runs/ppca_mnist")
            sec.figure("ppca_mnist_sigma2", f"{m['sigma2']:.4f}", "runs/ppca_mnist/metrics.json sigma2, q = 10")
            for row in m["heldout"]:
                sec.figure(f"ppca_mnist_bits_q{row['q']}", f"{row['test_bits_per_dim']:.3f}",
                           f"runs/ppca_mnist/metrics.json heldout: held-out bits per dimension at q = {row['q']}")
            top = m["closed_form"]["train_loglik"]
            sec.figure("ppca_mnist_gradient_gap", f"{top - m['gradient']['train_loglik']:.0f}",
                       "nats per sample the gradient route's training log-likelihood is short of the closed form's")
            sec.figure("ppca_mnist_em_gap", f"{top - m['em']['train_loglik']:.1f}", "the same for EM")
            for name, _, _ in (EXTRAS if not args.skip_extras else []):
                sec.figure(f"{name}_wall_s", _seconds(results[name]["wall"]), f"wall seconds of the {name} command")
            if not args.skip_extras:
                ppca_figures(sec, "ppca_digits", "runs/ppca_digits")
                ppca_figures(sec, "ppca_faces", "runs/ppca_faces")
                training_figures(sec, "mnist_seed1", "runs/softmax_mnist_seed1", per_run=False)
                training_figures(sec, "mnist_seed2", "runs/softmax_mnist_seed2", per_run=False)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
