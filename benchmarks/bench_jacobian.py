"""Time jacfwd, jacrev, jacobian(mode="auto") and a hand-written Jacobian; then the Jacobian checker.

    .venv/bin/python benchmarks/bench_jacobian.py [--repeats 20] [--checks 5] [--record]

f(x) = tanh(A x) with A of shape (n_out, n_in); the hand Jacobian is diag(1 - tanh(Ax)^2) A.
Everything is jitted and warmed up; times are the best of ``--repeats`` rounds of 10 calls, interleaved
(the minimum is the least load-sensitive statistic). Ratios are against the better of jacfwd/jacrev
measured in the same run: ``auto`` should be within 1.2x of it.

The checker section times ``check_jacobian`` as tests call it: on a fresh lambda per call, for
``--checks`` compositions of distinct structure (each compiles its programs) and then for the same
structures with new constants. The checker compiles with plain ``jax.jit`` (closed-over arrays passed as
arguments), so a new closure of a seen structure lowers to the same program: timed without and with
jax's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``, in a child process that starts with
an empty one, as the test suite does). Baseline in the same run: the evaluations a check makes (jacfwd,
jacrev, the finite-difference batch) done op by op, as a check without compiled programs would.

``--record`` writes the run's section of benchmarks/RESULTS.md (``benchmarks/collect.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import Section, add_record_flag, span  # noqa: E402

from lecture6 import gradcheck  # noqa: E402
from lecture6.jacobian import jacobian  # noqa: E402

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
    parser.add_argument("--checks", type=int, default=5, choices=range(1, 6),
                        help="structures per route in the checker section")
    parser.add_argument("--checker-route", help=argparse.SUPPRESS)  # the child process of one checker route
    add_record_flag(parser)
    args = parser.parse_args()
    if args.checker_route:
        print(json.dumps(checker_route(args.checker_route, args.checks)))
        return
    title = 'Jacobians: jacfwd vs jacrev vs `jacobian(mode="auto")` vs hand (`benchmarks/bench_jacobian.py`)'
    with Section("jacobian", title, record=args.record) as sec:
        sec.intro = (f"f(x) = tanh(A x), float32, jitted and warmed up; best of {args.repeats} interleaved rounds of "
                     "10 calls for every route alike. Then `check_jacobian` as tests call it, on fresh lambdas.")
        rows, programs = bench_modes(args.repeats)
        checker = bench_checker(args.checks)
        notes(sec, rows, programs)
        (_, new, same), (_, new_c, same_c), (_, new_o, same_o) = checker
        sec.note(f"The checker keeps no programs of its own: with jax's persistent compilation cache a check of a "
                 f"structure seen before took {same_c:.3f} s against {same:.3f} s compiling it again "
                 f"({same / same_c:.0f}× less), and {new_c:.2f} s for a new structure (op by op: {new_o:.2f} s "
                 f"new, {same_o:.3f} s seen). The test suite runs with that cache on.")


def bench_modes(repeats: int):
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({platform.processor() or platform.machine()}), "
          f"float32, best of {repeats} rounds of 10 calls, interleaved")
    print(f"{'shape':>8} {'n_out x n_in':>12} {'jacfwd':>10} {'jacrev':>10} {'auto':>10} {'hand':>10}"
          f" {'auto/best':>9} {'hand/best':>9}")
    rows, programs = {}, {}
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
        programs[name] = (chosen, same)
        t = median_times(fns, x, A, repeats=repeats)
        rows[name] = t
        best = min(t["jacfwd"], t["jacrev"])
        print(f"{name:>8} {f'{n_out} x {n_in}':>12} " + " ".join(f"{t[k] * 1e6:>8.0f}us" for k in fns)
              + f" {t['auto'] / best:>9.2f} {t['hand'] / best:>9.2f}")
    print("\n".join(f"{name}: auto -> {chosen}, same lowered program: {same}"
                    for name, (chosen, same) in programs.items()))
    worst = max(t["auto"] / min(t["jacfwd"], t["jacrev"]) for t in rows.values())
    print(f"worst auto / best-mode ratio: {worst:.2f} (target <= 1.2)")
    return rows, programs


def notes(sec: Section, rows: dict, programs: dict) -> None:
    """What the measurement shows, in words computed from it."""
    auto = [t["auto"] / min(t["jacfwd"], t["jacrev"]) for t in rows.values()]
    ratio = sec.figure("auto_ratio", span(auto, lambda r: f"{r:.2f}×"),
                       "jacobian(mode='auto') time / the faster of jacfwd and jacrev, over the three shapes")
    all_same = all(same for _, same in programs.values())
    differ = [name for name, (_, same) in programs.items() if not same]
    if all_same:
        sec.note(f"`auto` lowers to exactly the program of the mode it picks (all {len(programs)} shapes), so its "
                 f"ratio to that mode is 1 up to timing noise: {ratio} here, worst {max(auto):.2f} against the "
                 f"target of 1.2 ({'met' if max(auto) <= 1.2 else 'NOT met'}).")
    else:
        sec.note(f"`auto` does NOT lower to the program of the mode it picks for: {', '.join(differ)}. Ratios "
                 f"{ratio}.")
    wrong = {name: max(t["jacfwd"], t["jacrev"]) / min(t["jacfwd"], t["jacrev"]) for name, t in rows.items()}
    hand = {name: min(t["jacfwd"], t["jacrev"]) / t["hand"] for name, t in rows.items()}
    text = (f"The wrong mode costs {wrong['tall']:.0f}× (tall) and {wrong['wide']:.0f}× (wide); on the square "
            f"case the two modes are within {abs(wrong['square'] - 1):.0%} of each other. ")
    faster = [name for name, h in hand.items() if h > 1]
    if faster:
        top = max(hand, key=hand.get)
        text += (f"The hand-written Jacobian `diag(1 - tanh²) A` beats the better autodiff mode on "
                 f"{', '.join(faster)}, most on the {top} case ({hand[top]:.0f}×), where autodiff builds the "
                 "Jacobian from one JVP or VJP per column or row.")
    sec.note(text)
    sec.summary('`bench_jacobian.py`: `jacobian(mode="auto")` vs the better of jacfwd/jacrev', "within 1.2×",
                ratio + (" (the same lowered program as the mode it picks)" if all_same else
                         f" (a different program for {', '.join(differ)})"))


def composition(seed: int):
    """f(x) = s2(A2 s1(A1 x + c1) + c2), x in R^3, a hidden width of 2 to 5 and s1, s2 two of
    tanh/sin/softplus/square, all by seed: a new structure (ops and shapes) for every seed below 16, the
    same structure for seeds 16 apart, as a test suite checks many functions of many shapes."""
    rng = np.random.default_rng(seed)
    fns = [jnp.tanh, jnp.sin, jax.nn.softplus, jnp.square]
    s1, s2, w = fns[seed % 4], fns[(seed // 4) % 4], 2 + seed % 16 // 4
    A1, A2, c1, c2 = rng.normal(size=(w, 3)), rng.normal(size=(3, w)), rng.normal(size=w), rng.normal(size=3)
    return (lambda x: s2(A2 @ s1(A1 @ x + c1) + c2)), rng.normal(size=3)


def op_by_op(f, x):
    """What a check evaluates, without compiling it: jacfwd, jacrev and the FD batch, eagerly."""
    x = jnp.asarray(x)
    steps = 6e-6 * jnp.concatenate([jnp.eye(3), -jnp.eye(3)] * 3)
    return jax.jacfwd(f)(x), jax.jacrev(f)(x), jax.vmap(f)(x[None, :] + steps)


def timed_checks(fn, seeds) -> float:
    """Median seconds of ``fn(f, x)`` over the compositions ``seeds``."""
    out = []
    for seed in seeds:
        f, x = composition(seed)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(f, x))
        out.append(time.perf_counter() - t0)
    return float(np.median(out))


def check(f, x):
    return gradcheck.check_jacobian(f, x).jacobians["jacfwd"]


def checker_route(name: str, n: int) -> tuple[float, float]:
    """(new structure, same structure) median seconds of one route, its structures offset by its name."""
    fn, offset = {"check": (check, 0), "cached": (check, n), "op_by_op": (op_by_op, 2 * n)}[name]
    first = timed_checks(fn, [offset + s for s in range(n)])
    again = timed_checks(fn, [offset + s + 16 * (1 + r) for r in range(2) for s in range(n)])
    return first, again


def bench_checker(n: int) -> list[tuple[str, float, float]]:
    rows = [("check_jacobian (jax.jit)", *checker_route("check", n))]
    with tempfile.TemporaryDirectory(prefix="bench-jacobian-xla-cache-") as cache:
        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
               "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
        out = subprocess.run([sys.executable, __file__, "--checker-route", "cached", "--checks", str(n)], env=env,
                             check=True, capture_output=True, text=True).stdout
        rows.append(("  with the persistent compilation cache", *json.loads(out.strip().splitlines()[-1])))
    rows.append(("op by op (no compiled program)", *checker_route("op_by_op", n)))
    print(f"\ncheck_jacobian on fresh lambdas, f: R^3 -> R^3 (2 layers), median seconds per check over {n} "
          "structures")
    print(f"{'':>40} {'new structure':>14} {'same structure':>15}")
    for name, first, again in rows:
        print(f"{name:>40} {first:>13.3f}s {again:>14.4f}s")
    return rows


if __name__ == "__main__":
    main()
