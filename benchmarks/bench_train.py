"""Benchmark: training the 2-2-1 XOR network from many seeds -- ours, the code before the rewrite, and
what a JAX user would write -- all timed the same way in one process.

    python benchmarks/bench_train.py [--seeds 10000] [--small-seeds 1000] [--steps 2000] [--repeats 3]
    python benchmarks/bench_train.py --sweep      # the seeds-last / vmap crossover (lecture6/runs.py)
    python benchmarks/bench_train.py --parts      # what compiling costs; the seeds-last compiler option

Float32, full batch (4 points), plain SGD (lr 0.1), ReLU, He init, 2000 steps per seed. Every row is
compiled once (the compile seconds shown) and then run ``--repeats`` times; the best run counts.

* **ours**: ``lecture6.runs.make_train_runs`` -- every seed in one compiled program -- in the layout
  ``auto`` picks and in each layout, autodiff and hand gradients.
* **before**: ``make_train`` of the code at ``benchmarks/_old_code.py:REV`` (loaded from git), same configs.
* **jitted step under vmap**: what a JAX user would write -- one SGD step of one network (``jax.grad``
  of f_MSE), ``jax.jit(jax.vmap(step))`` -- stepped 2000 times from Python, and the same step under
  ``vmap`` scanned inside one ``jit``.
* **NumPy**: the hand backprop batched over a leading seed axis, a Python loop over the steps.

Prints seed-steps per second, compile seconds and ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _old_code import REV, old_lecture6  # noqa: E402

from lecture6.data import xor  # noqa: E402
from lecture6.rundir import load_config_file  # noqa: E402
from lecture6.runs import make_train_runs  # noqa: E402
from lecture6.train import init_seeds  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "xor.py")
LR = 0.1


def config(seeds, steps, **kw):
    return {**load_config_file(CONFIG).to_dict(), "seeds": seeds, "epochs": steps, "progress_every": 0, **kw}


def best_of(fn, repeats):
    """Seconds of the fastest of ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def row(name, seeds, steps, compile_s, run_s, solved):
    return {"name": name, "seeds": seeds, "compile_s": compile_s, "run_s": run_s, "rate": seeds * steps / run_s,
            "solved": solved}


def ours(seeds, steps, repeats, **kw):
    runs = make_train_runs(config(seeds, steps, **kw), xor())
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = runs.train.lower(key, runs.seed, runs.lr).compile()
    compile_s = time.perf_counter() - t0
    run_s, res = best_of(lambda: compiled(key, runs.seed, runs.lr), repeats)
    return row(f"ours ({runs.layout}, {kw.get('grad', 'autodiff')})", seeds, steps, compile_s, run_s,
               float(np.mean(res.solved)))


def before(seeds, steps, repeats, **kw):
    old = old_lecture6("train")
    if old is None:
        return None
    cfg = {k: v for k, v in config(seeds, steps, **kw).items() if k != "progress_every"}
    train = old.make_train(cfg, xor())
    key = jax.random.key(0)
    compile_s = train.compile(key)
    run_s, res = best_of(lambda: train(key), repeats)
    return row(f"before ({train.layout}, {kw.get('grad', 'autodiff')})", seeds, steps, compile_s, run_s,
               float(np.mean(res.solved)))


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

    return step, loss


def user_stepped(seeds, steps, repeats):
    """``jax.jit(jax.vmap(step))`` called ``steps`` times from Python."""
    step, loss = _user_step()
    stepped = jax.jit(jax.vmap(step))
    p0 = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    t0 = time.perf_counter()
    jax.block_until_ready(stepped(p0))
    compile_s = time.perf_counter() - t0

    def go():
        p = p0
        for _ in range(steps):
            p = stepped(p)
        return p

    run_s, p = best_of(go, repeats)
    return row("jitted step under vmap, stepped from Python", seeds, steps, compile_s, run_s, _solved(p))


def user_scanned(seeds, steps, repeats):
    """The same vmapped step, scanned ``steps`` times inside one ``jit``."""
    step, _ = _user_step()
    scanned = jax.jit(lambda p: jax.lax.scan(lambda p, _: (jax.vmap(step)(p), None), p, None, length=steps)[0])
    p0 = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    t0 = time.perf_counter()
    compiled = scanned.lower(p0).compile()
    compile_s = time.perf_counter() - t0
    run_s, p = best_of(lambda: compiled(p0), repeats)
    return row("jitted step under vmap, scanned in one jit", seeds, steps, compile_s, run_s, _solved(p))


def _solved(p):
    X, y = xor()
    W1, b1, W2, b2 = (np.asarray(p[k][n], np.float64) for k in (0, 1) for n in ("W", "b"))
    h = np.maximum(np.einsum("nd,shd->snh", X, W1) + b1[:, None, :], 0)
    out = np.einsum("snh,soh->sno", h, W2) + b2[:, None, :]
    return float(np.all(np.abs(out[..., 0] - y[None]) < 0.5, axis=1).mean())


def numpy_batched(seeds, steps, repeats):
    """Hand backprop of the 2-2-1 network in NumPy, batched over a leading seed axis (one run: it is slow)."""
    X, y = xor()
    X = X.astype(np.float32)
    Y = y.astype(np.float32)[None, :, None]
    init = init_seeds(jax.random.key(0), (2, 2, 1), seeds)
    W1, b1, W2, b2 = (np.array(init[k][name]) for k in (0, 1) for name in ("W", "b"))
    n = X.shape[0]
    t0 = time.perf_counter()
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
    run_s = time.perf_counter() - t0
    solved = float(np.all(np.abs(out - Y) < 0.5, axis=(1, 2)).mean())
    return row("NumPy hand backprop, batched over seeds (1 run)", seeds, steps, 0.0, run_s, solved)


def table(rows, ref, steps):
    print(f"\n2-2-1 XOR network, float32, full batch, {steps} SGD steps per seed; best of the repeats\n")
    print("| method | seeds | compile s | run s | seed-steps/s | ours / this | solved |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mine = ref[r["seeds"]]["rate"]
        print(f"| {r['name']} | {r['seeds']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | {r['rate']:.3g} | "
              f"{mine / r['rate']:.3g} | {r['solved']:.4f} |")


def sweep(steps, repeats):
    """seeds-last against vmap over the number of runs (width 2) and over the width (10,000 runs)."""
    print("| width | seeds | vmap seed-steps/s | seeds_last seed-steps/s | seeds_last / vmap | compile s (vmap, sl) |")
    print("|---:|---:|---:|---:|---:|---|")
    cases = [(2, s) for s in (8, 32, 128, 512, 2000, 10000)] + [(w, 10000) for w in (4, 8, 16, 32, 64)]
    for width, seeds in cases:
        v, s = (ours(seeds, steps, repeats, width=width, layout=lay) for lay in ("vmap", "seeds_last"))
        print(f"| {width} | {seeds} | {v['rate']:.3g} | {s['rate']:.3g} | {s['rate'] / v['rate']:.2f} | "
              f"{v['compile_s']:.2f}, {s['compile_s']:.2f} |", flush=True)


def parts(steps, repeats):
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
    print(f"compile: whole program {compile_s(runs.train, key, runs.seed, runs.lr):.2f} s; the initial-weight "
          f"draw alone, as (seeds, P) {compile_s(draw_2d, key, s):.2f} s, flat {compile_s(draw_flat, key, s):.2f} s")
    import lecture6.runs as runs_module

    for width in (2, 16):
        with_option = ours(seeds, steps, repeats, width=width)
        saved = runs_module.seeds_last_compiler_options
        runs_module.seeds_last_compiler_options = lambda: {}
        try:
            without = ours(seeds, steps, repeats, width=width)
        finally:
            runs_module.seeds_last_compiler_options = saved
        print(f"width {width}: seeds-last {with_option['rate']:.3g} seed-steps/s with the compiler option, "
              f"{without['rate']:.3g} without ({with_option['rate'] / without['rate']:.1f}x)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--small-seeds", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=4, help="alternations of ours and before for the headline")
    ap.add_argument("--sweep", action="store_true", help="measure the seeds-last / vmap thresholds instead")
    ap.add_argument("--parts", action="store_true", help="what compiling costs; the seeds-last compiler option")
    args = ap.parse_args()
    print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; before = git {REV}")
    S, s, T, n = args.seeds, args.small_seeds, args.steps, args.repeats
    if args.sweep:
        return sweep(T, n)
    if args.parts:
        return parts(T, n)
    rows, auto = [], {}
    for seeds in (s, S):
        auto[seeds] = (ours(seeds, T, n), before(seeds, T, n))
        rows += [*auto[seeds], *(ours(seeds, T, n, layout=lay) for lay in ("seeds_last", "vmap"))]
        rows += [before(seeds, T, n, layout=lay) for lay in ("seeds_last", "vmap")]
    rows += [ours(S, T, n, grad="hand"), before(S, T, n, grad="hand")]
    rows += [user_stepped(S, T, n), user_scanned(S, T, n), numpy_batched(S, T, n)]
    rows = [r for r in rows if r is not None]
    table(rows, {k: v[0] for k, v in auto.items()}, T)
    if auto[S][1] is not None:
        interleaved(args.rounds, (s, S), T, n)


def interleaved(rounds, sizes, steps, repeats):
    """Ours and before (layout auto), alternated ``rounds`` times: the headline, robust to a busy machine."""
    print(f"\nours against before, layout auto, {rounds} alternating rounds (best run, least compile):")
    for seeds in sizes:
        got = {"ours": [], "before": []}
        for _ in range(rounds):
            got["ours"].append(ours(seeds, steps, repeats))
            got["before"].append(before(seeds, steps, repeats))
        new, old = ({k: f(r[k] for r in v) for k, f in (("rate", max), ("compile_s", min))} for v in got.values())
        print(f"  {seeds} seeds: ours {new['rate']:.3g} seed-steps/s, before {old['rate']:.3g} "
              f"({new['rate'] / old['rate']:.2f}x); compile {new['compile_s']:.2f} s vs {old['compile_s']:.2f} s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
