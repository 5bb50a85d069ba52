"""Time jacfwd, jacrev, jacobian(mode="auto") and a hand-written Jacobian on tall, wide and square maps.

    .venv/bin/python benchmarks/bench_jacobian.py [--repeats 20]

f(x) = tanh(A x) with A of shape (n_out, n_in); the hand Jacobian is diag(1 - tanh(Ax)^2) A.
Everything is jitted and warmed up; times are the best of ``--repeats`` rounds of 10 calls, interleaved
(the minimum is the least load-sensitive statistic). Ratios are against the better of jacfwd/jacrev
measured in the same run: ``auto`` should be within 1.2x of it.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.jacobian import jacobian

SHAPES = {"tall": (4000, 40), "wide": (40, 4000), "square": (600, 600)}


def median_times(fns: dict, *args, repeats: int, inner: int = 10) -> dict:
    """Best-of-rounds seconds per call of each function; calls interleaved so that load hits all alike."""
    for fn in fns.values():
        jax.block_until_ready(fn(*args))  # compile + warm-up
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                out = fn(*args)
            jax.block_until_ready(out)
            times[k].append((time.perf_counter() - t0) / inner)
    return {k: float(np.min(v)) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor() or platform.machine()}), "
          f"float32, best of {args.repeats} rounds of 10 calls, interleaved")
    print(f"{'shape':>8} {'n_out x n_in':>12} {'jacfwd':>10} {'jacrev':>10} {'auto':>10} {'hand':>10}"
          f" {'auto/best':>9} {'hand/best':>9}")
    worst_auto = 0.0
    programs = []
    for name, (n_out, n_in) in SHAPES.items():
        rng = np.random.default_rng(0)
        A = jnp.asarray(rng.normal(size=(n_out, n_in)) / np.sqrt(n_in), dtype=jnp.float32)
        x = jnp.asarray(rng.normal(size=n_in), dtype=jnp.float32)

        def f(x, A):
            return jnp.tanh(A @ x)

        def hand(x, A):
            return (1 - jnp.tanh(A @ x) ** 2)[:, None] * A

        # A is an argument, not a closure constant, so XLA does not embed a large literal.
        fns = {
            "jacfwd": jax.jit(jax.jacfwd(f)),
            "jacrev": jax.jit(jax.jacrev(f)),
            "auto": jax.jit(lambda x, A: jacobian(lambda v: f(v, A), x)),
            "hand": jax.jit(hand),
        }
        ref = fns["hand"](x, A)
        for k, fn in fns.items():
            np.testing.assert_allclose(np.asarray(fn(x, A)).reshape(ref.shape), ref, rtol=2e-4, atol=2e-5,
                                       err_msg=k)
        chosen = "jacrev" if n_out < n_in else "jacfwd"
        same = fns["auto"].lower(x, A).as_text().replace("jit__lambda", "jit_X").split("\n")[1:] == \
            fns[chosen].lower(x, A).as_text().replace(f"jit_{f.__name__}", "jit_X").split("\n")[1:]
        programs.append(f"{name}: auto -> {chosen}, same lowered program: {same}")
        t = median_times(fns, x, A, repeats=args.repeats)
        best = min(t["jacfwd"], t["jacrev"])
        worst_auto = max(worst_auto, t["auto"] / best)
        print(f"{name:>8} {f'{n_out} x {n_in}':>12} " + " ".join(f"{t[k] * 1e6:>8.0f}us" for k in fns)
              + f" {t['auto'] / best:>9.2f} {t['hand'] / best:>9.2f}")
    print("\n".join(programs))
    print(f"worst auto / best-mode ratio: {worst_auto:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
