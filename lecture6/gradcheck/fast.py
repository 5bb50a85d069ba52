"""The fast check: every entry against autodiff, autodiff against finite differences along random
directions, and group testing to name the entry a disagreeing direction points at.

The full check evaluates f about eight times per input: hours for a network's parameters. This one:

1. **Hand against autodiff on every entry.** One compiled program computes ``f(x)``, the autodiff
   Jacobian (for a scalar f, one ``jax.grad``) and the forward-mode derivative along one random
   direction, which must equal the Jacobian times it (jacfwd against jacrev; where they disagree the
   direction is halved down to the input, as below). The hand Jacobian is compared with autodiff entry by
   entry, exactly as in the full check.
2. **Autodiff against finite differences along k random directions** (:mod:`lecture6.gradcheck.directions`,
   :data:`~lecture6.gradcheck.settings.DIRECTIONS` of them; every input moved at once). Along each, the
   central difference is compared with autodiff's ``J u``, computed from the points actually reached.
   Steps ten times apart (:data:`~lecture6.gradcheck.settings.DIRECTION_SHRINKS`) are tried from the
   longest down until a pair of neighbours is free of kinks and confirms each other: their difference,
   with the bound on rounding, is the error bar. **Kinks:** a direction through a ReLU network on
   thousands of examples crosses kinks within the longer steps; a kink within a step shows as one-sided
   differences that disagree alike at both steps (where f is smooth they differ by ``t f''``, ten times
   less at the shorter step), and the check shrinks the step. A direction with no such pair, or with a
   kink at x itself, is drawn anew (the kinked input located as below, judged alone, and left out).
3. **Group testing.** Where a direction disagrees beyond its error bar, its inputs are halved and the half
   still disagreeing is followed (the other half's difference is the parent's minus this one's) down to
   one input: about ``log2(n)`` rounds of four evaluations of f. Entries already examined are subtracted
   first, so that several directions pointing at one wrong entry search once.
4. **The named entries judged as in the full check** (:func:`lecture6.gradcheck.full.judge_columns`):
   finite differences at the full check's steps on that input alone, with its kink rules; likewise the
   worst few entries where the hand Jacobian disagrees with autodiff. A direction's alarm that no single
   entry confirms fails nothing (each entry is within its tolerance), and is noted.

The fast check keeps a handful of Jacobian-sized arrays (:func:`result_bytes`) and evaluates f a few
dozen times (four at a time, :data:`POINTS_PER_CALL`), whatever the number of inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.gradcheck import full, programs
from lecture6.gradcheck.directions import Directions, Node, draw, key_seed, locate_modes
from lecture6.gradcheck.result import Comparison, JacobianCheck, compare, diagnose, failing_entries, max_errors
from lecture6.gradcheck.settings import default_tolerances, fd_dtype

#: Points of f evaluated by one call of the compiled evaluation program (a round of group testing needs four).
POINTS_PER_CALL = 4
#: A direction counts only if its error bar is within this many times the FD tolerance of one entry
#: (1e-4 relative to the largest entry in float64). Along a direction through a ReLU network on
#: thousands of examples only steps below 1e-7 are free of kinks, where the bound on rounding is ~1e-5.
DIRECTION_SLACK = 100
#: Entries where the hand Jacobian disagrees with autodiff that are also checked by finite differences
#: (to judge kinks, and to print their FD value).
MAX_EXAMINED = 8


def result_bytes(n_out: int, n_in: int) -> int:
    """Jacobian-sized arrays of the fast check: hand, autodiff, FD and jacfwd (partial), the comparisons."""
    return 12 * n_out * n_in * 8


def _autodiff_program(fns, v_ad, v_fd, u, *, reverse: bool, forward: bool, batch_ad: int):
    """f(x), the autodiff Jacobian (by rows, or by columns for a tall f) and the forward-mode derivative along u."""
    g_ad, g_fd = ((lambda v, fn=fn: jnp.reshape(fn(v), (-1,))) for fn in fns)
    if reverse:  # rows by reverse mode: one vjp per output (for a scalar f, jax.grad)
        y, vjp = jax.vjp(g_ad, v_ad)
        J = programs.map_in_batches(lambda i: vjp(jnp.zeros_like(y).at[i].set(1))[0], jnp.arange(y.shape[0]), batch_ad)
    else:  # columns by forward mode
        J = programs.map_in_batches(lambda j: jax.jvp(g_ad, (v_ad,), (jnp.zeros_like(v_ad).at[j].set(1),))[1],
                                    jnp.arange(v_ad.shape[0]), batch_ad).T
    jv = jax.jvp(g_ad, (v_ad,), (u,))[1] if forward else jnp.zeros(J.shape[0], J.dtype)
    return g_fd(v_fd), J, jv


def _jvp_program(fns, v_ad, u):
    return jax.jvp(lambda v: jnp.reshape(fns[0](v), (-1,)), (v_ad,), (u,))[1]


def _points_program(fns, points, *, batch: int):
    return programs.map_in_batches(lambda v: jnp.reshape(fns[0](v), (-1,)), points, batch)


class Runner:
    """The compiled programs of one check: autodiff, f at given points, and (when needed) forward mode."""

    def __init__(self, f, x, budget: int):
        self.dtype = fd_dtype()
        self.v_fd = np.asarray(x, dtype=self.dtype).reshape(-1)
        self.v_ad = np.asarray(x).reshape(-1)
        f_of_vec = lambda v: f(jnp.reshape(v, x.shape))  # noqa: E731
        self.traced = programs.Traced(f_of_vec, self.v_ad)
        traced_fd = self.traced if self.v_ad.dtype == self.dtype else programs.Traced(f_of_vec, self.v_fd)
        self.forward = not self.traced.uses_custom_vjp()
        n_in, n_out = self.v_ad.size, int(np.prod(self.traced.out_shape.shape))
        self.reverse = n_out <= n_in or not self.forward
        self.out_shape = tuple(self.traced.out_shape.shape)
        each, point = traced_fd.evaluation_bytes(), self.v_fd.nbytes
        self._autodiff = programs.compile_with(
            _autodiff_program, [self.traced, traced_fd], reverse=self.reverse, forward=self.forward,
            batch_ad=programs.batch_size(n_out if self.reverse else n_in, 2 * each + point, budget))
        self._points = programs.compile_with(_points_program, [traced_fd],
                                             batch=programs.batch_size(POINTS_PER_CALL, each + point, budget))
        self._jvp = None
        self.calls = 0

    def autodiff(self, u: np.ndarray):
        """``f(x)`` (FD dtype), the autodiff Jacobian ``(n_out, n_in)`` and the forward-mode derivative along u."""
        f0, J, jv = self._autodiff(self.v_ad, self.v_fd, u.astype(self.v_ad.dtype))
        return np.asarray(f0, np.float64), np.asarray(J, np.float64), np.asarray(jv, np.float64)

    def jvp(self, u: np.ndarray) -> np.ndarray:
        """The forward-mode derivative along ``u`` (its program compiled on first use)."""
        if self._jvp is None:
            self._jvp = programs.compile_with(_jvp_program, [self.traced])
        return np.asarray(self._jvp(self.v_ad, u.astype(self.v_ad.dtype)), np.float64)

    def f_at(self, points: list[np.ndarray]) -> np.ndarray:
        """f at each point (in the FD dtype), ``POINTS_PER_CALL`` points per call; ``(len(points), n_out)``."""
        out = []
        for i in range(0, len(points), POINTS_PER_CALL):
            chunk = points[i:i + POINTS_PER_CALL]
            chunk = chunk + [self.v_fd] * (POINTS_PER_CALL - len(chunk))
            out.append(np.asarray(self._points(np.stack(chunk)), np.float64)[:len(points) - i])
            self.calls += 1
        return np.concatenate(out)


def _column(judged: full.Judged, k: int, col: int) -> full.Judged:
    """Column ``k`` of a judgement of several columns."""
    def one(c):
        return Comparison(c.abs_err[:, k:k + 1], c.tol[:, k:k + 1], c.bad[:, k:k + 1])

    return full.Judged(judged.fd[:, k:k + 1], one(judged.ad_fd), one(judged.primary), one(judged.judged),
                       [kk for kk in judged.kinks if kk.col == col])


def fast_check(f, x, hand: np.ndarray | None, *, rtol: float, atol: float, fd_rtol: float, fd_atol: float,
               budget: int, directions: int, key) -> JacobianCheck:
    """Stages 1-4 of the module docstring, then the verdict as in the full check."""
    run = Runner(f, x, budget)
    n_in, v = run.v_ad.size, run.v_fd
    rng = np.random.default_rng(key_seed(key, v))
    excluded: set[int] = set()
    us = [draw(rng, n_in, excluded) for _ in range(directions)]
    f0, J, jv = run.autodiff(us[0])
    n_out = J.shape[0]
    finite = np.isfinite(J)
    scale = max(1.0, float(np.max(np.abs(J[finite]), initial=0.0)))
    ad_name = "jacrev" if run.reverse else "jacfwd"
    examined: dict[int, full.Judged] = {}
    fd, fwd = np.full(J.shape, np.nan), np.full(J.shape, np.nan)
    search = Directions(run, J, f0, np.full(n_out, DIRECTION_SLACK * fd_atol * scale), fd_rtol)

    def examine(cols) -> None:
        """Finite differences at the full check's steps on each input of ``cols`` alone, judged as there."""
        cols = np.asarray(sorted(set(cols) - set(examined)), dtype=np.int64)
        if not cols.size:
            return
        plus, minus = full.steps(v, cols)
        points = []
        for k, c in enumerate(cols):
            for value in (*plus[:, k], *minus[:, k]):
                points.append(v.copy())
                points[-1][c] = value
        levels = plus.shape[0]
        vals = run.f_at(points).reshape(cols.size, 2, levels, n_out).transpose(1, 2, 3, 0)  # (2, L, n_out, c)
        ev = full.Evaluation(run.out_shape, None, None, f0, vals[0], vals[1], (plus - v[cols]).astype(np.float64),
                             (v[cols] - minus).astype(np.float64), float(np.finfo(v.dtype).eps))
        judged = full.judge_columns(J[:, cols], None if hand is None else hand[:, cols], full.differences(ev), cols,
                                    scale, rtol, atol, fd_rtol, fd_atol)
        fd[:, cols] = judged.fd
        for k, c in enumerate(cols):
            examined[int(c)] = _column(judged, k, int(c))
            if not examined[int(c)].kinks:
                search.known[int(c)] = judged.fd[:, k] - J[:, c]

    def leaf(j: int) -> str | None:
        examine([j])
        if examined[j].kinks:
            excluded.add(j)
            return "kink"
        return "mismatch" if examined[j].ad_fd.bad.any() else None

    # 1. hand against autodiff on every entry; the worst few also by finite differences (kinks, values)
    if hand is not None:
        primary = compare(hand, J, atol * scale + rtol * np.abs(J))
        examine(list(dict.fromkeys(c for _, c in primary.worst_first()))[:MAX_EXAMINED])
    else:  # autodiff is the candidate, finite differences (where evaluated) the reference
        primary = Comparison(np.zeros(J.shape), np.ones(J.shape), np.zeros(J.shape, bool))
    # 2. jacfwd against jacrev along the directions, located by halving where they disagree
    mode_bad: list[tuple[int, int]] = []
    modes_agree = True
    if run.forward and run.reverse:
        r_ad, a_ad = default_tolerances(x.dtype)
        if np.any(~(np.abs(jv - J @ us[0]) <= r_ad * (np.abs(J) @ np.abs(us[0])) + a_ad * scale)):
            modes_agree = False
            mode_bad = locate_modes(run, J, us[0], scale, r_ad, a_ad, fwd)
    # 3. autodiff against finite differences along the directions; 4. the entries they point at
    pending, draws, bars, unconfirmed, redrawn = [Node(u, 0, n_in) for u in us], directions, [], 0, 0
    max_rounds, start = 4 * int(np.ceil(np.log2(max(n_in, 2)))) + 8, 0
    while pending:
        nodes, pending = pending, []
        for group in (nodes[:1], nodes[1:]):  # the others start at the steps that served the first one
            if group:
                search.evaluate([(n, lv) for n in group for lv in (start, start + 1)])
                search.settle(group)
                start = max(start, search.verdict(group[0])[2])
        for node in nodes:
            score, bar, level = search.verdict(node)  # after the entries named by the nodes before it
            found = None
            if score > 1 or (bar is None and search.kink_at_x(node)):
                found = search.locate(node, level if bar is not None else max(node.disc) - 1, leaf, max_rounds)
            unconfirmed += bar is not None and score > 1 and found is None
            if bar is not None and found != "kink":
                bars.append(float(np.max(bar)))
            else:
                redrawn += 1
                if draws < 3 * directions:
                    draws += 1
                    pending.append(Node(draw(rng, n_in, excluded), 0, n_in))

    # the verdict, as in the full check, over every entry for hand vs autodiff, the examined ones for FD
    judged, candidate = (Comparison(primary.abs_err.copy(), primary.tol.copy(), primary.bad.copy()),
                         Comparison(primary.abs_err.copy(), primary.tol.copy(), primary.bad.copy()))
    for c, one in examined.items():
        for whole, part in ((judged, one.judged), (candidate, one.primary)):
            whole.abs_err[:, c], whole.tol[:, c], whole.bad[:, c] = part.abs_err[:, 0], part.tol[:, 0], part.bad[:, 0]
    kinks = [k for c in sorted(examined) for k in examined[c].kinks]
    fd_bad = sorted(((int(r), c) for c, one in examined.items() for r in np.nonzero(one.ad_fd.bad[:, 0])[0]),
                    key=lambda e: -float(examined[e[1]].ad_fd.score()[e[0], 0]))
    worst, mismatches = failing_entries(judged, fd_bad, mode_bad)
    max_abs, max_rel = max_errors(judged, J if hand is not None else np.where(np.isnan(fd), J, fd))
    notes = _notes(run, ad_name, bars, redrawn, unconfirmed, excluded, kinks)
    if hand is not None and judged.bad.any():
        notes.extend(diagnose(hand, J, primary.tol))
    routes = {"hand": hand, ad_name: J, "fd": fd, "jacfwd": fwd if ad_name == "jacrev" and mode_bad else None}
    return JacobianCheck(
        autodiff_finite=bool(finite.all() and np.isfinite(jv).all()), autodiff_modes_agree=modes_agree,
        autodiff_matches_fd=not fd_bad, hand_matches_autodiff=None if hand is None else not candidate.bad.any(),
        kinks_explain=all(k.accepted for k in kinks), max_abs_error=max_abs, max_rel_error=max_rel,
        worst=worst, mismatches=mismatches, mode_mismatches=mode_bad, fd_mismatches=fd_bad,
        jacobians={k: a for k, a in routes.items() if a is not None}, in_shape=tuple(x.shape),
        out_shape=run.out_shape, rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol, autodiff=ad_name,
        reference=ad_name if hand is not None else "fd", kinks=kinks, notes=notes, mode="fast",
    )


def _notes(run: Runner, ad_name: str, bars: list[float], redrawn: int, unconfirmed: int, excluded: set[int],
           kinks: list) -> list[str]:
    n = run.v_ad.size
    notes = [f"fast mode: autodiff ({ad_name}) on all {n} entries; finite differences along "
             + (f"{len(bars)} random directions, which agreed with autodiff within {max(bars):.1e}"
                if bars else "no direction (kinks at every step tried): autodiff was NOT checked against them")
             + f" ({run.calls * POINTS_PER_CALL} evaluations of f)"]
    if not run.forward:
        notes.append("f has a jax.custom_vjp rule, which forward mode cannot differentiate: jacrev alone "
                     "stands for autodiff")
    elif not run.reverse:
        notes.append("f has more outputs than inputs: autodiff by forward mode only, jacfwd and jacrev not compared")
    if redrawn:
        notes.append(f"{redrawn} directions drawn anew: kinks at every step tried, or a kink at x")
    if excluded:
        notes.append(f"{len(excluded)} inputs at a kink at x judged one by one and left out of later directions")
    if unconfirmed:
        notes.append(f"{unconfirmed} directions disagreed with autodiff beyond their error bar but no single "
                     "entry did (each entry is within its tolerance)")
    if kinks:
        notes.append(f"{len(kinks)} entries at a kink were judged against one-sided derivatives")
    return notes
