"""Benchmark: training the 2-2-1 XOR network from many seeds, compiled whole vs two baselines.

    python benchmarks/bench_train.py [--seeds 10000] [--steps 2000]

All in float32, full batch (4 points), plain SGD (lr 0.1), ReLU, 2000 steps per seed:

* **ours**: ``lecture6.train.make_train`` -- the whole run, every seed, one compiled program -- in the
  seeds-last layout (the default for this network) and the vmap layout, autodiff and hand gradients;
  at 1,000 and at 10,000 seeds (is there a slowdown when the batch of seeds grows?), and the vmap
  layout with the seeds split into blocks of 1,000 by ``lax.map`` inside the program.
* **jitted step, Python loop per seed**: ``jax.jit`` of one SGD step, called 2000 times per seed from
  Python. Timed on a few seeds and **extrapolated** to all seeds (it is linear in the seeds).
* **NumPy, batched over seeds**: the hand backprop of the 2-2-1 net written with NumPy arrays carrying a
  leading seed axis, a Python loop over the 2000 steps.

Prints seed-steps per second, compile time, and the ratios against ours.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.data import xor
from lecture6.mlp import forward
from lecture6.train import init_seeds, make_train

LR = 0.1


def ours(seeds: int, steps: int, *, layout: str = "auto", grad: str = "autodiff", seed_block: int = 0,
         repeats: int = 3):
    X, y = xor()
    cfg = {"seeds": seeds, "epochs": steps, "log_every": 10, "lr": LR, "layout": layout, "grad": grad,
           "dtype": "float32", "width": 2, "activation": "relu", "batch_size": 4, "seed_block": seed_block}
    train = make_train(cfg, (X, y))
    key = jax.random.key(0)
    compile_s = train.compile(key)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        res = jax.block_until_ready(train(jax.random.fold_in(key, r)))
        times.append(time.perf_counter() - t0)
    assert train.n_traces == 1
    best = min(times)
    block = f", blocks of {seed_block}" if seed_block else ""
    return {"name": f"ours ({train.layout}, {grad}{block})", "seeds": seeds, "compile_s": compile_s,
            "run_s": best, "rate": seeds * steps / best, "solved": float(np.mean(res.solved))}


def python_loop(seeds: int, steps: int, measured_seeds: int = 3):
    """A jitted step called from Python, one seed after another (timed on a few, extrapolated)."""
    X, y = xor()
    X = jnp.asarray(X, jnp.float32)
    Y = jnp.asarray(y, jnp.float32)[:, None]

    def loss(p):
        out, _ = forward(p, X, activation="relu")
        return 0.5 * jnp.mean(jnp.sum((out - Y) ** 2, axis=1))

    @jax.jit
    def step(p):
        g = jax.grad(loss)(p)
        return jax.tree.map(lambda a, b: a - LR * b, p, g)

    init = init_seeds(jax.random.key(0), (2, 2, 1), measured_seeds, dtype=jnp.float32)
    t0 = time.perf_counter()
    jax.block_until_ready(step(jax.tree.map(lambda a: a[0], init)))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(measured_seeds):
        p = jax.tree.map(lambda a, s=s: a[s], init)
        for _ in range(steps):
            p = step(p)
        jax.block_until_ready(p)
    dt = time.perf_counter() - t0
    rate = measured_seeds * steps / dt
    return {"name": f"jitted step, Python loop (measured {measured_seeds} seeds, extrapolated)",
            "seeds": seeds, "compile_s": compile_s, "run_s": seeds * steps / rate, "rate": rate,
            "solved": float("nan")}


def numpy_batched(seeds: int, steps: int):
    """Hand backprop of the 2-2-1 network in NumPy, batched over a leading seed axis."""
    X, y = xor()
    X = X.astype(np.float32)
    Y = y.astype(np.float32)[None, :, None]  # (1, n, 1)
    init = init_seeds(jax.random.key(0), (2, 2, 1), seeds, dtype=jnp.float32)
    W1, b1, W2, b2 = (np.array(init[k][name]) for k in (0, 1) for name in ("W", "b"))
    n = X.shape[0]
    t0 = time.perf_counter()
    for _ in range(steps):
        z = np.einsum("nd,shd->snh", X, W1) + b1[:, None, :]  # (S, n, h)
        h = np.maximum(z, 0)
        out = np.einsum("snh,soh->sno", h, W2) + b2[:, None, :]  # (S, n, 1)
        g = (out - Y) / n
        gW2 = np.einsum("sno,snh->soh", g, h)
        gb2 = g.sum(1)
        gz = np.einsum("sno,soh->snh", g, W2) * (z > 0)
        gW1 = np.einsum("snh,nd->shd", gz, X)
        gb1 = gz.sum(1)
        W1 -= LR * gW1
        b1 -= LR * gb1
        W2 -= LR * gW2
        b2 -= LR * gb2
    dt = time.perf_counter() - t0
    solved = np.all(np.abs(out - Y) < 0.5, axis=(1, 2)).mean()
    return {"name": "NumPy hand backprop, batched over seeds", "seeds": seeds, "compile_s": 0.0,
            "run_s": dt, "rate": seeds * steps / dt, "solved": float(solved)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10000)
    ap.add_argument("--small-seeds", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    print(f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    S, s, T = args.seeds, args.small_seeds, args.steps
    rows = [
        ours(S, T),
        ours(s, T),
        ours(S, T, grad="hand"),
        ours(S, T, layout="vmap"),
        ours(s, T, layout="vmap"),
        ours(S, T, layout="vmap", seed_block=s),
        python_loop(S, T),
        numpy_batched(S, T),
    ]
    ref = rows[0]["rate"]
    print(f"\n2-2-1 XOR network, float32, full batch, {T} SGD steps per seed\n")
    print("| method | seeds | compile s | run s | seed-steps/s | ours / this | solved |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['seeds']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | {r['rate']:.3g} | "
              f"{ref / r['rate']:.3g} | {r['solved']:.3f} |")
    print(f"\nours at {s} seeds: {rows[1]['rate']:.3g} seed-steps/s; at {S}: {rows[0]['rate']:.3g} "
          f"(ratio {rows[0]['rate'] / rows[1]['rate']:.2f}; >= 1 means no slowdown)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
