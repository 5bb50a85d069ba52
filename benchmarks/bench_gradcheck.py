"""Checking the gradient of the lecture's MNIST network: ``check_gradient`` against ``jax.test_util.check_grads``.

    .venv/bin/python benchmarks/bench_gradcheck.py [--repeats 3] [--keys 20] [--record]

The 784-64-10 network (50,890 parameters) on 4,000 dequantized MNIST images, softmax-CE with L2
(``lecture6.audit.mnist.mnist_problem``), ReLU and tanh, float64. Three gradients to check:

* (a) ``backprop``, correct;
* (b) ``backprop`` with one weight's entry, ``W2[3, 5]``, 1% off;
* (c) a function whose ``jax.custom_jvp`` is wrong in one entry: the objective of ``W1`` passed through an
  identity whose rule scales the tangent of ``W1[i, j]`` by 1.01 (the entry with the largest gradient),
  with autodiff's own gradient as the hand gradient, so that only finite differences can tell.

Ours: ``check_gradient(J, params, grad)`` with its defaults (the fast mode at this size). The baseline, as a
competent user would check a hand gradient with JAX's tool: ``check_grads(J', (params,), order=1,
modes=("rev",))`` where ``J'`` is ``J`` with the hand gradient as its ``jax.custom_vjp`` backward rule (for
(c), ``J`` itself). Every check runs in its own child process that loads the data, then times the one
call, compilation included, and reports its peak resident memory (``ru_maxrss``, which includes the
interpreter, JAX and the data: the same for both sides); the median of ``--repeats`` children per cell,
ours and the baseline's interleaved. The box is shared: compare only times measured in the same run.

Then: 784-16-10 on 1,000 images (the size at which the checker used to die allocating 30.7 GB), ours by
default and in the full mode on 100 images (which used to take 17.8 GB); and the false alarms of ours
on ``--keys`` random initialisations of the ReLU network (correct backprop each time).

``--record`` writes the run's section of benchmarks/RESULTS.md (``benchmarks/collect.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag  # noqa: E402

CASES = {"a": "correct backprop", "b": "backprop, W2[3, 5] 1% off", "c": "custom_jvp wrong in one W1 entry"}


def child(spec: dict) -> dict:
    """One check in this process: build the problem, time the call, report the verdict and peak memory."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from lecture6.audit.mnist import mnist_problem
    from lecture6.gradcheck import check_gradient

    if spec.get("keys"):  # the false alarms: a correct ReLU backprop on several initialisations, one process
        alarms, evals = [], []
        for k in range(spec["keys"]):
            J, grad, params = mnist_problem(spec["width"], spec["n"], activation="relu", seed=k)
            res = check_gradient(J, params, grad)
            alarms.append(not res.ok)
            evals.append(int(res.notes[0].rsplit("(", 1)[1].split()[0]))
            print(f"key {k}: {'PASS' if res.ok else 'FAIL'}; {res.notes[0]}", file=sys.stderr)
        return {"alarms": int(sum(alarms)), "evaluations": [min(evals), max(evals)]}
    J, grad, params = mnist_problem(spec["width"], spec["n"], activation=spec.get("act", "relu"))
    out = {"flat_W2_3_5": 785 * spec["width"] + 3 * spec["width"] + 5}  # after W1 (w x 784) and b1 (w)
    if spec["case"] == "b":
        def grad(p, right=grad):
            g = right(p)
            g[1]["W"] = g[1]["W"].at[3, 5].multiply(1.01)
            return g
    elif spec["case"] == "c":
        g0 = np.asarray(jax.jit(jax.grad(J))(params)[0]["W"])
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(g0)), g0.shape))
        out["entry"] = f"params[0]['W'][{idx[0]}, {idx[1]}]"

        @jax.custom_jvp
        def ident(W):
            return W

        @ident.defjvp
        def _(primals, tangents):
            return primals[0], tangents[0].at[idx].multiply(1.01)

        J = (lambda p, J=J: J([{"W": ident(p[0]["W"]), "b": p[0]["b"]}, *p[1:]]))
        grad = jax.grad(J)
    t0 = time.perf_counter()
    if spec["side"] == "ours":
        res = check_gradient(J, params, grad, mode=spec.get("mode", "auto"))
        out.update(ok=bool(res.ok), said=("PASS" if res.ok else f"FAIL, names {res.entry_name(*res.worst)}"),
                   worst=int(res.worst[1]), notes=res.notes)
    else:
        from jax.test_util import check_grads

        f = J
        if spec["case"] != "c":  # the hand gradient as the backward rule that check_grads checks
            f = jax.custom_vjp(J)
            f.defvjp(lambda p: (J(p), p), lambda p, ct: (jax.tree.map(lambda a: ct * a, grad(p)),))
        try:
            check_grads(f, (params,), order=1, modes=("rev",))
            out.update(ok=True, said="PASS")
        except AssertionError as e:
            first = [ln for ln in str(e).splitlines() if "difference" in ln][:1]
            out.update(ok=False, said="FAIL, names no entry (" + "; ".join(first).strip() + ")")
    out["seconds"] = time.perf_counter() - t0
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(spec: dict) -> dict:
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"child {spec} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="children per cell (median)")
    parser.add_argument("--keys", type=int, default=20, help="initialisations for the false-alarm count")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_record_flag(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import jax  # noqa: F401  (only for the machine line of the record: the checks run in child processes)
    title = "Checking the MNIST network's gradient: `check_gradient` vs `jax.test_util.check_grads` " \
            "(`benchmarks/bench_gradcheck.py`)"
    with Section("gradcheck", title, record=args.record) as sec:
        sec.intro = (f"784-64-10 on 4,000 dequantized MNIST images, softmax-CE + L2, float64. Each check in its own "
                     f"child process, timed with compilation, peak resident memory of that process (interpreter, "
                     f"JAX and data included); median of {args.repeats} children per cell, both sides interleaved. "
                     f"The baseline checks the hand gradient as the `custom_vjp` backward rule of the objective.")
        cells = side_by_side(args.repeats)
        extras = sizes_and_alarms(args.keys)
        notes(sec, cells, extras, args.keys)


def side_by_side(repeats: int) -> dict:
    cells: dict = {}
    for r in range(repeats):
        for act in ("relu", "tanh"):
            for case in CASES:
                for side in ("ours", "check_grads") if r % 2 == 0 else ("check_grads", "ours"):
                    out = run_child({"side": side, "act": act, "case": case, "width": 64, "n": 4000})
                    cells.setdefault((act, case, side), []).append(out)
    print(f"{'network':>8} {'case':<34} {'side':<12} {'seconds':>8} {'peak MB':>8}  says")
    for (act, case, side), runs in cells.items():
        sec_ = float(np.median([o["seconds"] for o in runs]))
        mb = float(np.max([o["rss_mb"] for o in runs]))
        print(f"{act:>8} ({case}) {CASES[case]:<30} {side:<12} {sec_:>8.2f} {mb:>8.0f}  {runs[0]['said']}")
    return cells


def sizes_and_alarms(keys: int) -> dict:
    big = run_child({"side": "ours", "case": "a", "width": 16, "n": 1000})
    full = run_child({"side": "ours", "case": "a", "width": 16, "n": 100, "mode": "full"})
    alarms = run_child({"side": "ours", "case": "a", "width": 64, "n": 4000, "keys": keys})
    print(f"\n784-16-10, 1,000 images, default (fast) mode: {big['seconds']:.2f} s, {big['rss_mb']:.0f} MB, "
          f"{big['said']}")
    print(f"784-16-10, 100 images, mode='full' (every entry by finite differences): {full['seconds']:.1f} s, "
          f"{full['rss_mb']:.0f} MB, {full['said']}")
    print(f"784-64-10 ReLU, correct backprop, {keys} initialisations: {alarms['alarms']} false alarms; "
          f"{alarms['evaluations'][0]}-{alarms['evaluations'][1]} evaluations of f per check")
    return {"big": big, "full": full, "alarms": alarms}


def notes(sec: Section, cells: dict, extras: dict, keys: int) -> None:
    def median(act, case, side, key="seconds"):
        return float(np.median([o[key] for o in cells[(act, case, side)]]))

    def peak(act, case, side):
        return float(np.max([o["rss_mb"] for o in cells[(act, case, side)]]))

    rows = ["| network | gradient checked | ours: says | ours: s | ours: MB | check_grads: says | check_grads: s | "
            "check_grads: MB | ours / check_grads (tanh), time |", "|---|---|---|---:|---:|---|---:|---:|---:|"]
    ratios = []
    for act in ("relu", "tanh"):
        for case in CASES:
            ratio = median(act, case, "ours") / median("tanh", case, "check_grads")
            ratios.append(ratio)
            rows.append(f"| 784-64-10 {act} | ({case}) {CASES[case]} | {cells[(act, case, 'ours')][0]['said']} | "
                        f"{median(act, case, 'ours'):.2f} | {peak(act, case, 'ours'):.0f} | "
                        f"{cells[(act, case, 'check_grads')][0]['said']} | {median(act, case, 'check_grads'):.2f} | "
                        f"{peak(act, case, 'check_grads'):.0f} | {ratio:.2f} |")
    sec.note("\n".join(rows))
    named_b = all(o["worst"] == o["flat_W2_3_5"] for act in ("relu", "tanh") for o in cells[(act, "b", "ours")])
    named_c = all(cells[(act, "c", "ours")][0]["said"].endswith(cells[(act, "c", "ours")][0]["entry"])
                  for act in ("relu", "tanh"))
    worst = sec.figure("worst_ratio", f"{max(ratios):.2f}×",
                       "slowest of our six checks / check_grads on the tanh network, same case, same run")
    mb = sec.figure("peak_mb", f"{max(peak(a, c, 'ours') for a in ('relu', 'tanh') for c in CASES):.0f} MB",
                    "largest peak resident memory of a process running one of our checks")
    relu_a = sec.figure("relu_seconds", f"{median('relu', 'a', 'ours'):.1f} s",
                        "our check of the correct ReLU backprop, compilation included")
    cg = sec.figure("check_grads_seconds", f"{median('tanh', 'a', 'check_grads'):.1f} s",
                    "check_grads on the tanh network, correct backprop")
    alarms = sec.figure("false_alarms", f"{extras['alarms']['alarms']} of {keys}",
                        "our checks of a correct ReLU backprop that failed, over random initialisations")
    sec.note(f"Ours names the perturbed entry of (b) as `worst` on both networks: {named_b}; and the entry of (c) "
             f"by group testing: {named_c}. check_grads raises on the correct ReLU backprop "
             f"({cells[('relu', 'a', 'check_grads')][0]['said']}) and names no entry in any case. Our slowest check "
             f"took {worst} the time of check_grads (target: at most 2×); our largest peak was {mb} (target: 1 GB). "
             f"The correct ReLU backprop: {relu_a} against check_grads' {cg} on tanh. False alarms: {alarms} "
             f"initialisations of the ReLU network.")
    big, full = extras["big"], extras["full"]
    sec.note(f"784-16-10 on 1,000 images completes in {big['seconds']:.1f} s ({big['rss_mb']:.0f} MB); the full mode "
             f"on 100 images, every entry by finite differences in batches under the memory budget, in "
             f"{full['seconds']:.0f} s ({full['rss_mb']:.0f} MB).")
    sec.summary("`bench_gradcheck.py`: `check_gradient` vs `check_grads`, 784-64-10 on 4,000 MNIST images",
                "at most 2× check_grads' time, 1 GB, no false alarm",
                f"{worst} the time, {mb} peak, {alarms} false alarms; names the wrong entry")


if __name__ == "__main__":
    main()
