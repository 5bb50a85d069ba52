"""Hand backprop (Algorithm 6.4) against jax.grad, both jitted, on a batch of 1024 examples.

    .venv/bin/python benchmarks/bench_backprop.py [--repeats 50] [--dtype float32] [--record]

For each depth/width the two gradient functions are compiled and warmed up, checked to agree, then
timed (median of ``--repeats`` interleaved calls, each ``block_until_ready``). Prints one row per network and
the ratio jax.grad / backprop (> 1 means the hand backprop is faster). ``--record`` writes the run's section
of benchmarks/RESULTS.md (``benchmarks/collect.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag, span  # noqa: E402

from lecture6 import backprop as bp  # noqa: E402
from lecture6 import mlp  # noqa: E402
from lecture6.losses import mse  # noqa: E402

NETWORKS = [  # (depth = number of weight layers, width, input dim, output dim)
    (2, 32, 64, 10),
    (3, 128, 64, 10),
    (4, 256, 64, 10),
    (6, 64, 64, 10),
]


def _objective(params, X, Y, l2):
    yhat = mlp.predict(params, X, activation="relu", output="identity")
    return mse(yhat, Y) + 0.5 * l2 * sum(jnp.sum(p["W"] ** 2) for p in params)


def _time_pair(f, g, *args, repeats: int) -> tuple[float, float]:
    """Median seconds per call of ``f`` and ``g``, calls interleaved so that load changes hit both."""
    jax.block_until_ready(f(*args))  # warm-up
    jax.block_until_ready(g(*args))
    tf, tg = [], []
    for _ in range(repeats):
        for fn, out in ((f, tf), (g, tg)):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            out.append(time.perf_counter() - t0)
    return statistics.median(tf), statistics.median(tg)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    add_record_flag(parser)
    args = parser.parse_args(argv)
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    title = "Backprop (Algorithm 6.4) vs jax.grad (`benchmarks/bench_backprop.py`)"
    with Section("backprop", title, record=args.record) as sec:
        sec.intro = (f"Hand `lecture6.backprop.backprop` against `jax.grad` of the same MSE + L2 objective, both "
                     f"jitted and warmed up, batch of {args.batch}, ReLU hidden layers, {args.dtype}; median of "
                     f"{args.repeats} interleaved calls of each (the two gradients are checked to agree first).")
        ratios = bench(args)
        ratio = sec.figure("ratio", span(ratios, lambda r: f"{r:.2f}×"),
                           "jax.grad time / hand backprop time over the four networks (> 1: backprop faster)")
        spread = max(abs(r - 1) for r in ratios)
        sec.note(f"jax.grad / backprop = {ratio}: the hand backprop runs within ±{spread:.0%} of reverse-mode "
                 "autodiff. Both compile to the same matrix products, which is the point of the slide's \"we can "
                 "simplify this process analytically\"; the hand version is there to be read and checked, not to "
                 "beat XLA.")
        sec.summary(f"`bench_backprop.py`: Algorithm 6.4 vs `jax.grad`, batch {args.batch}", "record the ratio",
                    f"{ratio} (jax.grad time / backprop time)")


def bench(args) -> list[float]:
    dtype = jnp.dtype(args.dtype)
    hand = jax.jit(lambda p, X, Y, l2: bp.backprop(p, X, Y, activation="relu", loss="mse", l2=l2))
    auto = jax.jit(jax.grad(_objective))

    print(f"# {platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}, batch {args.batch}, {args.dtype}, median of {args.repeats}")
    print(f"{'depth':>5} {'width':>5} {'backprop ms':>12} {'jax.grad ms':>12} {'grad/backprop':>14}")
    key = jax.random.key(0)
    ratios = []
    for depth, width, d, k in NETWORKS:
        key, k1, k2, k3 = jax.random.split(key, 4)
        sizes = [d] + [width] * (depth - 1) + [k]
        params = mlp.init_mlp(k1, sizes, dtype=dtype)
        X = jax.random.normal(k2, (args.batch, d), dtype=dtype)
        Y = jax.random.normal(k3, (args.batch, k), dtype=dtype)
        l2 = jnp.asarray(1e-4, dtype=dtype)
        g_hand, g_auto = hand(params, X, Y, l2), auto(params, X, Y, l2)
        err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
                  for a, b in zip(jax.tree.leaves(g_hand), jax.tree.leaves(g_auto)))
        if err > (1e-4 if dtype == jnp.float32 else 1e-10):
            raise SystemExit(f"backprop and jax.grad disagree by {err:.2e} (relative) at depth {depth}")
        t_hand, t_auto = _time_pair(hand, auto, params, X, Y, l2, repeats=args.repeats)
        ratios.append(t_auto / t_hand)
        print(f"{depth:>5} {width:>5} {1e3 * t_hand:>12.3f} {1e3 * t_auto:>12.3f} {t_auto / t_hand:>14.2f}")
    return ratios


if __name__ == "__main__":
    main()
