"""Benchmark: training the 2-2-1 XOR network from many seeds -- ours, the code before the rewrite, and
what a JAX user would write -- all timed the same way in one process.

    python benchmarks/bench_train.py [--seeds 10000] [--small-seeds 1000] [--steps 2000] [--repeats 5] [--record]
    python benchmarks/bench_train.py --sweep      # the seeds-last / vmap crossover (lecture6/runs.py), 500 steps
    python benchmarks/bench_train.py --parts      # what compiling costs; the seeds-last compiler option, 200 steps

Float32, full batch (4 points), plain SGD (lr 0.1), ReLU, He init, 2000 steps per seed. Every method is
compiled once (the compile seconds shown), then all of them are called in turn, ``--repeats`` rounds; each
method's fastest call counts. Ours and every baseline get the same statistic from the same number of calls,
interleaved, so that the load of a shared machine hits them alike.

* **ours**: ``lecture6.runs.make_train_runs`` -- every seed in one compiled program -- in the layout
  ``auto`` picks and in the other layout, autodiff and hand gradients.
* **before**: ``make_train`` of the code at ``benchmarks/_old_code.py:REV`` (loaded from git), same configs.
* **jitted step under vmap**: what a JAX user would write -- one SGD step of one network (``jax.grad``
  of f_MSE), ``jax.jit(jax.vmap(step))`` -- stepped 2000 times from Python, and the same step under
  ``vmap`` scanned inside one ``jit``.
* **NumPy**: the hand backprop batched over a leading seed axis, a Python loop over the steps; it runs
  ``--numpy-steps`` (200) steps per call, whose rate per seed-step is what is compared (its cost per step
  does not depend on the number of steps; 2000 would make a round 25 s longer).

``--sweep`` and ``--parts`` measure rates over fewer steps (500, 200; ``--steps`` overrides) for the same
reason. Prints seed-steps per second, compile seconds and ratios; ``--record`` writes the run's section
of benchmarks/RESULTS.md (``benchmarks/collect.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _old_code import NEW_FIELDS, REV, old_lecture6  # noqa: E402
from _results import Section, add_record_flag, sci, span, times  # noqa: E402

from lecture6.data import xor  # noqa: E402
from lecture6.rundir import load_config_file  # noqa: E402
from lecture6.runs import make_train_runs  # noqa: E402
from lecture6.train import init_seeds  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "xor.py")
LR = 0.1
LABELS = {"table": "training XOR from many seeds", "sweep": "the seeds-last / vmap sweep",
          "parts": "what compiling costs"}


def config(seeds, steps, **kw):
    return {**load_config_file(CONFIG).to_dict(), "seeds": seeds, "epochs": steps, "progress_every": 0, **kw}


class Method(NamedTuple):
    """One way to train ``seeds`` networks for ``steps`` steps, compiled: ``call()`` runs it once."""

    name: str
    kind: str  # "ours", "before", "user" or "numpy"
    layout: str  # "seeds_last", "vmap" or "" (not ours)
    grad: str  # "autodiff" or "hand"
    seeds: int
    steps: int
    compile_s: float
    call: Callable
    solved: Callable  # output of call() -> fraction of seeds that solve XOR (None: not meaningful)


def race(methods, repeats):
    """Every method called once per round, ``repeats`` rounds; per method the fastest call and its output."""
    best = [float("inf")] * len(methods)
    out = [None] * len(methods)
    for _ in range(repeats):
        for i, m in enumerate(methods):
            t0 = time.perf_counter()
            out[i] = jax.block_until_ready(m.call())
            best[i] = min(best[i], time.perf_counter() - t0)
    return [{**m._asdict(), "call": None, "run_s": t, "rate": m.seeds * m.steps / t, "solved": m.solved(o)}
            for m, t, o in zip(methods, best, out)]


def ours(seeds, steps, **kw):
    runs = make_train_runs(config(seeds, steps, **kw), xor())
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = runs.train.lower(key, runs.seed, runs.lr).compile()
    compile_s = time.perf_counter() - t0
    grad = kw.get("grad", "autodiff")
    return Method(f"ours ({runs.layout}, {grad})", "ours", runs.layout, grad, seeds, steps, compile_s,
                  lambda: compiled(key, runs.seed, runs.lr), lambda res: float(np.mean(res.solved)))


def before(seeds, steps, **kw):
    old = old_lecture6("train")
    if old is None:
        return None
    cfg = {k: v for k, v in config(seeds, steps, **kw).items() if k not in NEW_FIELDS}
    train = old.make_train(cfg, xor())
    key = jax.random.key(0)
    compile_s = train.compile(key)
    grad = kw.get("grad", "autodiff")
    return Method(f"before ({train.layout}, {grad})", "before", train.layout, grad, seeds, steps, compile_s,
                  lambda: train(key), lambda res: float(np.mean(res.solved)))


def _user_step():
    """One SGD step of one 2-2-1 network, as a JAX user would write it."""
    X, y = xor()
    X, Y = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)[:, None]

    def loss(p):
        h = jax.nn.relu(X @ p[0]["W"].T + p[0]["b"][None, :])
        out = h @ p[1]["W"].T + p[1]["b"][None, :]
        return 0.5 * jnp.mean(jnp.sum((out - Y) ** 2, axis=1))

    def step(p):
        return jax.tree.map(lambda a, g: a - LR * g, p, jax.grad(loss)(p))

    return step


def user_stepped(seeds, steps):
    """``jax.jit(jax.vmap(step))`` called ``steps`` times from Python."""
    stepped = jax.jit(jax.vmap(_user_step()))
    p0 = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    t0 = time.perf_counter()
    jax.block_until_ready(stepped(p0))
    compile_s = time.perf_counter() - t0

    def go():
        p = p0
        for _ in range(steps):
            p = stepped(p)
        return p

    return Method("jitted step under vmap, stepped from Python", "user", "", "autodiff", seeds, steps, compile_s, go,
                  _solved)


def user_scanned(seeds, steps):
    """The same vmapped step, scanned ``steps`` times inside one ``jit``."""
    step = _user_step()
    scanned = jax.jit(lambda p: jax.lax.scan(lambda p, _: (jax.vmap(step)(p), None), p, None, length=steps)[0])
    p0 = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    t0 = time.perf_counter()
    compiled = scanned.lower(p0).compile()
    compile_s = time.perf_counter() - t0
    return Method("jitted step under vmap, scanned in one jit", "user", "", "autodiff", seeds, steps, compile_s,
                  lambda: compiled(p0), _solved)


def _solved(p):
    X, y = xor()
    W1, b1, W2, b2 = (np.asarray(p[k][n], np.float64) for k in (0, 1) for n in ("W", "b"))
    h = np.maximum(np.einsum("nd,shd->snh", X, W1) + b1[:, None, :], 0)
    out = np.einsum("snh,soh->sno", h, W2) + b2[:, None, :]
    return float(np.all(np.abs(out[..., 0] - y[None]) < 0.5, axis=1).mean())


def numpy_batched(seeds, steps):
    """Hand backprop of the 2-2-1 network in NumPy, batched over a leading seed axis."""
    X, y = xor()
    X = X.astype(np.float32)
    Y = y.astype(np.float32)[None, :, None]
    init = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    start = [np.array(init[k][name]) for k in (0, 1) for name in ("W", "b")]
    n = X.shape[0]

    def go():
        W1, b1, W2, b2 = (a.copy() for a in start)
        for _ in range(steps):
            z = np.einsum("nd,shd->snh", X, W1) + b1[:, None, :]
            h = np.maximum(z, 0)
            out = np.einsum("snh,soh->sno", h, W2) + b2[:, None, :]
            g = (out - Y) / n
            gz = np.einsum("sno,soh->snh", g, W2) * (z > 0)
            W2 -= LR * np.einsum("sno,snh->soh", g, h)
            b2 -= LR * g.sum(1)
            W1 -= LR * np.einsum("snh,nd->shd", gz, X)
            b1 -= LR * gz.sum(1)
        return [{"W": W1, "b": b1}, {"W": W2, "b": b2}]

    return Method("NumPy hand backprop, batched over seeds", "numpy", "", "hand", seeds, steps, 0.0, go,
                  lambda p: None)


def other(layout):
    return {"seeds_last": "vmap", "vmap": "seeds_last"}[layout]


def table(rows, ref):
    print("| method | seeds | steps | compile s | best run s | seed-steps/s | ours / this | solved |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        solved = "—" if r["solved"] is None else f"{r['solved']:.4f}"
        print(f"| {r['name']} | {r['seeds']} | {r['steps']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | "
              f"{r['rate']:.3g} | {ref[r['seeds']]['rate'] / r['rate']:.3g} | {solved} |")


def measure(S, s, T, numpy_steps, repeats):
    """Compile every method, then race them; rows of the table and ``{seeds: ours (auto) row}``."""
    methods, auto = [], {}
    for seeds in (s, S):
        mine, old = ours(seeds, T), before(seeds, T)
        auto[seeds] = mine.name
        methods += [mine, old, ours(seeds, T, layout=other(mine.layout))]
        if old is not None:
            methods.append(before(seeds, T, layout=other(old.layout)))
    methods += [ours(S, T, grad="hand"), before(S, T, grad="hand")]
    methods += [user_stepped(S, T), user_scanned(S, T), numpy_batched(S, numpy_steps)]
    methods = [m for m in methods if m is not None]
    print(f"{len(methods)} methods compiled; racing them, {repeats} rounds of one call each", flush=True)
    rows = race(methods, repeats)
    ref = {r["seeds"]: r for r in rows if r["name"] == auto[r["seeds"]] and r["steps"] == T}
    return rows, ref


def notes_table(sec, rows, ref, S, s, T, repeats):
    def find(kind, seeds, grad="autodiff", layout=None, name=""):
        return next((r for r in rows if r["kind"] == kind and r["seeds"] == seeds and r["grad"] == grad
                     and (layout is None or r["layout"] == layout) and name in r["name"]), None)

    mine_s, mine_S = ref[s], ref[S]
    old_s, old_S = (find("before", n, layout=ref[n]["layout"]) for n in (s, S))
    scanned, stepped = find("user", S, name="scanned"), find("user", S, name="stepped")
    numpy, hand, ours_vmap = find("numpy", S, grad="hand"), find("ours", S, grad="hand"), find("ours", S, layout="vmap")
    rate = sec.figure(f"rate_{S}", sci(mine_S["rate"]),
                      f"seed-steps/s of ours (layout auto), {S:,} seeds x {T} steps, best of {repeats}")
    run_s = sec.figure(f"run_s_{S}", f"{mine_S['run_s']:.2g} s", "the seconds of that run (compiled)")
    sec.note(f"**Ours: {S:,} networks × {T:,} steps in {run_s}** ({rate} seed-steps/s) after compiling for "
             f"{mine_S['compile_s']:.1f} s, in the {mine_S['layout']} layout `auto` picks.")
    v_scan = sec.figure("vs_user_scanned", times(mine_S["rate"] / scanned["rate"]),
                        f"ours / jax.jit(vmap(step)) scanned in one jit, seed-steps/s, {S:,} seeds")
    v_step = sec.figure("vs_user_stepped", times(mine_S["rate"] / stepped["rate"]),
                        f"ours / jax.jit(vmap(step)) stepped from Python, seed-steps/s, {S:,} seeds")
    v_np = sec.figure("vs_numpy", times(mine_S["rate"] / numpy["rate"]),
                      f"ours / NumPy hand backprop batched over seeds, seed-steps/s, {S:,} seeds")
    if old_s and old_S:
        vs = {n: sec.figure(f"vs_before_{n}", times(ref[n]["rate"] / o["rate"]),
                            f"ours / before, seed-steps/s, {n:,} seeds, layout auto on both sides")
              for n, o in ((s, old_s), (S, old_S))}
        comp_ours = sec.figure("compile_ours", f"{mine_s['compile_s']:.1f} / {mine_S['compile_s']:.1f} s",
                               f"compile seconds of ours at {s:,} / {S:,} seeds (one compile each)")
        comp_old = sec.figure("compile_before", f"{old_s['compile_s']:.1f} / {old_S['compile_s']:.1f} s",
                              f"compile seconds of before at {s:,} / {S:,} seeds (one compile each)")
        met = all(ref[n]["rate"] >= o["rate"] and ref[n]["compile_s"] <= o["compile_s"]
                  for n, o in ((s, old_s), (S, old_S)))
        sec.note(f"**Ours against before** (the code at git {REV}): {vs[s]} the seed-steps/s at {s:,} seeds, "
                 f"{vs[S]} at {S:,}; compile {comp_ours} against {comp_old} (a single compile each, so noisier "
                 f"than the run times). Target (at least as fast, compile no worse): {'met' if met else 'NOT met'}.")
        same = all(round(o["solved"] * n) == round(ref[n]["solved"] * n) for n, o in ((s, old_s), (S, old_S)))
        sec.note("Same seeds, same networks: " + (
            f"both codes solve exactly {mine_s['solved']:.2%} ({s:,} seeds) and {mine_S['solved']:.2%} ({S:,})."
            if same else f"the solved fractions DIFFER (ours {mine_s['solved']}, {mine_S['solved']}; before "
                         f"{old_s['solved']}, {old_S['solved']})."))
        sec.summary(f"`bench_train.py`: 2-2-1 XOR, {T:,} steps, float32, against the code before and the vmapped "
                    "jitted step (same run, same statistic)",
                    f"at least as fast at {s:,} and {S:,} seeds, compile no worse",
                    f"{s:,} seeds: {vs[s]} before; {S:,}: {rate} seed-steps/s, {vs[S]} before, {v_scan} the "
                    f"vmapped jitted step; compile {comp_ours} against {comp_old} (target "
                    f"{'met' if met else 'NOT met'})")
    text = (f"**Against what a JAX user would write** (the vmapped jitted step, timed exactly like ours): at {S:,} "
            f"seeds ours trains {v_scan} the seed-steps per second of that step scanned in one `jit`, {v_step} those "
            f"of it stepped from Python, and {v_np} those of batched NumPy.")
    if ours_vmap is not None:
        r = ours_vmap["rate"] / scanned["rate"]
        text += (f" Our own vmap layout runs at {r:.2f}× the user's scanned step, so the gain is the layout: "
                 f"`vmap` puts the runs axis first and multiplies {S:,} separate 2×2 matrices, seeds-last keeps "
                 "each weight of the slide as one vector over the runs." if 0.67 <= r <= 1.5 else
                 f" Our own vmap layout runs at {r:.2f}× the user's scanned step.")
    sec.note(text)
    if round(scanned["solved"] * S) != round(mine_S["solved"] * S):
        sec.note(f"The baselines written here (from `init_seeds`, their own float32 arithmetic) solve "
                 f"{scanned['solved']:.2%} of the {S:,} seeds, ours {mine_S['solved']:.2%}; they are compared on "
                 "speed only.")
    if hand is not None:
        sec.note(f"**Hand gradients** (`grad=\"hand\"`, Algorithm 6.4) run in the {hand['layout']} layout, at "
                 f"{hand['rate'] / mine_S['rate']:.2f}× the seed-steps/s of the default at {S:,} seeds.")


def sweep(sec, steps, repeats):
    """seeds-last against vmap over the number of runs (width 2) and over the width (10,000 runs)."""
    print("| width | seeds | vmap seed-steps/s | seeds_last seed-steps/s | seeds_last / vmap | compile s (vmap, sl) |")
    print("|---:|---:|---:|---:|---:|---|")
    cases = [(2, s) for s in (8, 32, 128, 512, 2000, 10000)] + [(w, 10000) for w in (4, 8, 16, 32, 64)]
    gains = []
    for width, seeds in cases:
        v, s = race([ours(seeds, steps, width=width, layout=lay) for lay in ("vmap", "seeds_last")], repeats)
        gains.append(s["rate"] / v["rate"])
        print(f"| {width} | {seeds} | {v['rate']:.3g} | {s['rate']:.3g} | {gains[-1]:.2f} | "
              f"{v['compile_s']:.2f}, {s['compile_s']:.2f} |", flush=True)
    gain = sec.figure("range", span(gains, lambda r: f"{r:.1f}×"),
                      "seeds-last / vmap seed-steps/s, smallest and largest over the cases measured")
    if min(gains) > 1:
        sec.note(f"Seeds-last wins everywhere measured, {gain}: `lecture6.runs` picks it from 8 runs on and up to "
                 "768 products (examples × weights) per forward pass, the measured range.")
    else:
        lost = [f"width {w}, {n} seeds" for (w, n), g in zip(cases, gains) if g <= 1]
        sec.note(f"Seeds-last / vmap: {gain}; vmap is as fast or faster at {'; '.join(lost)}: the thresholds "
                 "in `lecture6.runs` need a look.")


def parts(sec, steps, repeats):
    """What compiling costs, and what the seeds-last compiler option buys (10,000 seeds, width 2 and 16)."""
    key, seeds = jax.random.key(0), 10000

    def compile_s(f, *a):
        t0 = time.perf_counter()
        f.lower(*a).compile()
        return time.perf_counter() - t0

    runs = make_train_runs(config(seeds, steps), xor())
    s = jnp.arange(seeds)
    draw_2d = jax.jit(lambda k, s: jax.random.normal(k, (seeds, 6))[s])
    draw_flat = jax.jit(lambda k, s: jax.random.normal(k, (seeds * 6,)).reshape(seeds, 6)[s])
    whole, d2, flat = compile_s(runs.train, key, runs.seed, runs.lr), compile_s(draw_2d, key, s), \
        compile_s(draw_flat, key, s)
    print(f"compile: whole program {whole:.2f} s; the initial-weight draw alone, as (seeds, P) {d2:.2f} s, "
          f"flat {flat:.2f} s")
    import lecture6.runs as runs_module

    gains = {}
    for width in (2, 16):
        with_option = ours(seeds, steps, width=width)
        saved = runs_module.seeds_last_compiler_options
        runs_module.seeds_last_compiler_options = lambda: {}
        try:
            without = ours(seeds, steps, width=width)
        finally:
            runs_module.seeds_last_compiler_options = saved
        a, b = race([with_option, without], repeats)
        gains[width] = a["rate"] / b["rate"]
        print(f"width {width}: seeds-last {a['rate']:.3g} seed-steps/s with the compiler option, "
              f"{b['rate']:.3g} without ({gains[width]:.1f}x)")
    sec.note(f"**Compiling**: the whole {seeds:,}-seed program compiled in {whole:.1f} s; the threefry draw of the "
             f"initial weights alone takes {d2:.2f} s to compile drawn as `(seeds, P)` and {flat:.2f} s drawn flat "
             "as `(seeds * P,)` (the same numbers; `lecture6.train.init_params` draws flat).")
    sec.note(f"**The seeds-last compiler option** (`runs.seeds_last_compiler_options`: XLA keeps the small "
             f"reductions as its own loops instead of YNNPACK fusions): {gains[2]:.1f}× the seed-steps/s at width 2, "
             f"{gains[16]:.1f}× at width 16.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--small-seeds", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=None, help="steps per seed (default 2000; --sweep 500, --parts 200)")
    ap.add_argument("--numpy-steps", type=int, default=200, help="steps per call of the NumPy baseline")
    ap.add_argument("--repeats", type=int, default=None, help="rounds; each method's fastest call counts "
                                                              "(default 5; --sweep and --parts 3)")
    ap.add_argument("--sweep", action="store_true", help="measure the seeds-last / vmap thresholds instead")
    ap.add_argument("--parts", action="store_true", help="what compiling costs; the seeds-last compiler option")
    add_record_flag(ap)
    args = ap.parse_args()
    mode = "sweep" if args.sweep else "parts" if args.parts else "table"
    T = args.steps or {"table": 2000, "sweep": 500, "parts": 200}[mode]
    n = args.repeats or {"table": 5, "sweep": 3, "parts": 3}[mode]
    S, s = args.seeds, args.small_seeds
    name = {"table": "train", "sweep": "train_sweep", "parts": "train_parts"}[mode]
    title = {"table": "Training XOR from many seeds, compiled whole (`benchmarks/bench_train.py`)",
             "sweep": "Where the seeds-last layout pays (`bench_train.py --sweep`)",
             "parts": "What compiling costs; the seeds-last compiler option (`bench_train.py --parts`)"}[mode]
    with Section(name, title, record=args.record) as sec:
        print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs; before = git {REV}")
        if mode == "sweep":
            sec.intro = (f"Width 2 over the number of runs, then widths 4-64 at 10,000 runs; {T} steps per run "
                         f"(a rate per seed-step: the compiled loop's cost per step does not depend on the count), "
                         f"the two layouts of `lecture6.runs` raced, best of {n} calls each.")
            sweep(sec, T, n)
        elif mode == "parts":
            sec.intro = (f"10,000 seeds, {T} steps per run (rates per seed-step), best of {n} interleaved calls; "
                         "compile times of single compiles.")
            parts(sec, T, n)
        else:
            sec.intro = (f"The 2-2-1 ReLU XOR network, float32, full batch (4 points), plain SGD (lr 0.1), {T:,} "
                         "steps per seed, He init. **ours** is `lecture6.runs.make_train_runs`: every seed in one "
                         "compiled program, in the layout `auto` picks and in the other one. **before** is "
                         f"`make_train` of the code before the rewrite (git `{REV}`, loaded from git by "
                         "`benchmarks/_old_code.py`). The baselines a JAX user would write: one SGD step of one "
                         f"network, `jax.jit(jax.vmap(step))`, stepped {T:,} times from Python, and the same vmapped "
                         "step scanned inside one `jit`; and NumPy hand backprop batched over seeds "
                         f"({args.numpy_steps} steps per call). Every method is compiled once, then all are called "
                         f"in turn, {n} rounds; each one's fastest call counts (the same statistic for ours and "
                         "every baseline).")
            rows, ref = measure(S, s, T, args.numpy_steps, n)
            print(f"\n2-2-1 XOR network, float32, full batch, SGD; best of {n} interleaved calls\n")
            table(rows, ref)
            notes_table(sec, rows, ref, S, s, T, n)


if __name__ == "__main__":
    main()
