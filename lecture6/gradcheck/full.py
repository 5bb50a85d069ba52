"""The full check: every entry of the Jacobian by jacfwd, jacrev and finite differences at three steps.

Stages, each a function below:

1. **evaluate** (:func:`evaluate`): one compiled program computes ``jacrev``, ``jacfwd``, ``f(x)`` and
   ``f(x +- h e_j)`` for every input ``j`` at each step of :data:`~lecture6.gradcheck.settings.FD_SHRINKS`,
   column by column in batches that fit the memory budget (:mod:`lecture6.gradcheck.programs`).
2. **finite differences** (:func:`differences`): left, right and central differences at each step,
   with a bound on their rounding error.
3. **kinks** (:func:`find_kinks`, :func:`judge_kinks`): entries where ``f`` is not differentiable at
   ``x`` along input ``j`` (the one-sided differences disagree at every step: ReLU or Heaviside at 0).
   There the candidate (the hand value, or autodiff without one) must be a one-sided derivative or lie
   between the two (a subgradient); across a jump, the finite one.
4. **comparisons** (:func:`judge_columns`, :func:`compare_modes`): hand against autodiff, autodiff against
   the central differences, jacfwd against jacrev.

The fast check (:mod:`lecture6.gradcheck.fast`) runs stages 2-4 on the few columns it examines.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.gradcheck import programs
from lecture6.gradcheck.result import (
    Comparison,
    JacobianCheck,
    KinkEntry,
    compare,
    diagnose,
    failing_entries,
    judged_with_kinks,
    max_errors,
)
from lecture6.gradcheck.settings import FD_NOISE_ULPS, FD_SHRINKS, base_steps, default_tolerances, fd_dtype


def steps(v_fd: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points ``x_j + h_l`` and ``x_j - h_l`` (``(L, len(cols))``, rounded to the FD dtype) for columns ``cols``."""
    h = base_steps(v_fd[cols])[None, :] * np.asarray(FD_SHRINKS[v_fd.dtype])[:, None]
    return v_fd[cols][None, :] + h.astype(v_fd.dtype), v_fd[cols][None, :] - h.astype(v_fd.dtype)


def result_bytes(n_out: int, n_in: int) -> int:
    """What the full check keeps of Jacobian size: f at every step on both sides, four Jacobians, and the
    left, right, central differences and noise bounds at every step, plus the comparisons (float64)."""
    return (6 * len(FD_SHRINKS[fd_dtype()]) + 10) * n_out * n_in * 8


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Everything computed from ``f`` for the columns checked; differences per step level."""

    out_shape: tuple[int, ...]  # the shape of f(x)
    jacfwd: np.ndarray | None  # (n_out, n_in); None when f has a custom_vjp rule (no forward mode)
    jacrev: np.ndarray | None
    f0: np.ndarray  # (n_out,): f(x), in the FD dtype
    fp: np.ndarray  # (L, n_out, n_cols): f(x + hp[l, j] e_j)
    fm: np.ndarray  # (L, n_out, n_cols): f(x - hm[l, j] e_j)
    hp: np.ndarray  # (L, n_cols): the steps actually taken (x_j + h is rounded to the FD dtype)
    hm: np.ndarray
    eps: float  # machine epsilon of the FD dtype


def _program(fns, v_ad, v_fd, plus, minus, *, autodiff: bool, forward: bool, batch_cols: int, batch_rows: int):
    """f(x), f with entry j replaced by ``plus[l, j]`` / ``minus[l, j]``, jacfwd and jacrev, in batches.

    ``fns`` are f of ``vec[x]`` (for autodiff, and for finite differences); their outputs are flattened
    here, so that every Jacobian is 2-D.
    """
    g_ad, g_fd = ((lambda v, fn=fn: jnp.reshape(fn(v), (-1,))) for fn in fns)

    def column(args):
        j, p, m = args
        out = {"f": jax.vmap(lambda value: g_fd(v_fd.at[j].set(value)))(jnp.concatenate([p, m]))}
        if autodiff and forward:
            out["jvp"] = jax.jvp(g_ad, (v_ad,), (jnp.zeros_like(v_ad).at[j].set(1),))[1]
        return out

    cols = jnp.arange(v_fd.shape[0])
    res = programs.map_in_batches(column, (cols, plus.T, minus.T), batch_cols)
    out = {"f0": g_fd(v_fd), "f": res["f"]}
    if autodiff:
        y, vjp = jax.vjp(g_ad, v_ad)
        out["jacrev"] = programs.map_in_batches(lambda i: vjp(jnp.zeros_like(y).at[i].set(1))[0],
                                                jnp.arange(y.shape[0]), batch_rows)
        if forward:
            out["jacfwd"] = res["jvp"].T
    return out


def evaluate(f, x, *, autodiff: bool = True, budget: int) -> Evaluation:
    """Every column of the Jacobian of ``f`` at ``x``: autodiff and f at the steps of each input."""
    dtype = fd_dtype()
    v_fd = np.asarray(x, dtype=dtype).reshape(-1)
    cols = np.arange(v_fd.size)
    plus, minus = steps(v_fd, cols)

    def f_of_vec(v):
        return f(jnp.reshape(v, x.shape))

    v_ad = np.asarray(x).reshape(-1)  # NumPy: an eager jnp.reshape would compile a program per shape
    traced_ad = programs.Traced(f_of_vec, v_ad)
    out_aval = traced_ad.out_shape
    if not (hasattr(out_aval, "dtype") and jnp.issubdtype(out_aval.dtype, jnp.floating)):
        raise TypeError(f"check_jacobian needs f to return one real floating-point array, got {out_aval}")
    traced_fd = traced_ad if v_ad.dtype == dtype else programs.Traced(f_of_vec, v_fd)
    forward = not traced_ad.uses_custom_vjp()
    n_in, n_out, levels = v_fd.size, int(np.prod(out_aval.shape)), plus.shape[0]
    each = traced_fd.evaluation_bytes()
    per_col = (2 * levels + 2) * each + (2 * levels + 1) * v_fd.nbytes
    run = programs.compile_with(_program, [traced_ad, traced_fd], autodiff=autodiff, forward=forward,
                                batch_cols=programs.batch_size(n_in, per_col, budget),
                                batch_rows=programs.batch_size(n_out, each + v_ad.nbytes, budget))
    out = jax.tree.map(lambda a: np.asarray(a, dtype=np.float64), run(v_ad, v_fd, plus, minus))
    fvals = np.transpose(out["f"], (1, 2, 0))  # (2L, n_out, n_in)
    return Evaluation(
        out_shape=tuple(out_aval.shape), jacfwd=out.get("jacfwd"), jacrev=out.get("jacrev"), f0=out["f0"],
        fp=fvals[:levels], fm=fvals[levels:],
        hp=(plus - v_fd[None, :]).astype(np.float64), hm=(v_fd[None, :] - minus).astype(np.float64),
        eps=float(np.finfo(dtype).eps),
    )


@dataclasses.dataclass(frozen=True)
class Differences:
    """One-sided and central differences, ``(L, n_out, n_cols)``, one slice per step level."""

    left: np.ndarray  # (f(x) - f(x - h e_j)) / h
    right: np.ndarray  # (f(x + h e_j) - f(x)) / h
    central: np.ndarray
    noise: np.ndarray  # bound on the rounding error of a central difference
    h: np.ndarray  # (L, n_cols): the shorter of the two steps


def differences(ev: Evaluation) -> Differences:
    hp, hm = ev.hp[:, None, :], ev.hm[:, None, :]
    f0 = ev.f0[None, :, None]
    size = np.maximum(np.abs(f0), np.maximum(np.abs(ev.fp), np.abs(ev.fm)))
    h = np.minimum(ev.hp, ev.hm)
    with np.errstate(invalid="ignore", over="ignore"):
        return Differences(
            left=(f0 - ev.fm) / hm,
            right=(ev.fp - f0) / hp,
            central=(ev.fp - ev.fm) / (hp + hm),
            noise=FD_NOISE_ULPS * ev.eps * size / h[:, None, :],
            h=h,
        )


def find_kinks(d: Differences, scale: float, fd_rtol: float, fd_atol: float) -> np.ndarray:
    """``(n_out, n_cols)`` mask: the one-sided differences disagree at every step (NaN never counts)."""
    gap = np.abs(d.left - d.right)
    with np.errstate(invalid="ignore"):
        return np.all(gap > fd_atol * scale + fd_rtol * np.abs(d.right) + 2 * d.noise, axis=0)


def judge_kinks(cand: np.ndarray, d: Differences, kink: np.ndarray, scale: float, fd_rtol: float,
                fd_atol: float, hand_given: bool, cols: np.ndarray) -> list[KinkEntry]:
    """Accept a candidate value at a kink if it is a one-sided derivative or between the two.

    ``cand`` and ``d`` hold the columns ``cols`` of the Jacobian; the entries name the global column.
    """
    kinks = []
    for r, c in zip(*np.nonzero(kink)):
        lo, hi, hv = float(d.left[0, r, c]), float(d.right[0, r, c]), float(cand[r, c])
        ktol = fd_atol * scale + fd_rtol * max(abs(lo), abs(hi)) + 2 * float(d.noise[0, r, c])
        big = 1.0 / np.sqrt(d.h[0, c])  # a one-sided difference across a jump is ~ jump / h
        jump_l, jump_r = abs(lo) > big, abs(hi) > big
        if jump_l or jump_r:
            finite = [s for s, j in ((lo, jump_l), (hi, jump_r)) if not j]
            accepted = any(abs(hv - s) <= ktol for s in finite)
            why = ("f jumps here; hand equals the finite one-sided derivative" if accepted
                   else "f jumps here; hand matches neither finite one-sided derivative")
        else:
            accepted = min(lo, hi) - ktol <= hv <= max(lo, hi) + ktol
            if accepted and (abs(hv - lo) <= ktol or abs(hv - hi) <= ktol):
                why = "hand equals a one-sided derivative"
            elif accepted:
                why = "hand lies between the one-sided derivatives (a subgradient)"
            else:
                why = "hand lies outside the one-sided derivatives"
        kinks.append(KinkEntry(int(r), int(cols[c]), lo, hi, hv if hand_given else None, bool(accepted), why))
    return kinks


def compare_with_fd(ad: np.ndarray, d: Differences, kink: np.ndarray, scale: float, fd_rtol: float,
                    fd_atol: float) -> tuple[np.ndarray, Comparison]:
    """Autodiff against the central difference at the first step that agrees; where none does, at the first
    step with no kink within it (its one-sided differences agree), else the longest.

    Returns the finite-difference Jacobian so chosen, and the comparison; kink entries are skipped.
    """
    tol = fd_atol * scale + fd_rtol * np.abs(ad)[None] + d.noise
    with np.errstate(invalid="ignore"):
        agree = np.abs(ad[None] - d.central) <= tol
        smooth = np.abs(d.left - d.right) <= fd_atol * scale + fd_rtol * np.abs(d.right) + 2 * d.noise
    level = np.where(agree.any(axis=0), np.argmax(agree, axis=0), np.argmax(smooth, axis=0))[None]
    fd = np.take_along_axis(d.central, level, axis=0)[0]
    return fd, compare(ad, fd, np.take_along_axis(tol, level, axis=0)[0], skip=kink)


@dataclasses.dataclass(frozen=True)
class Judged:
    """The columns ``cols`` judged: FD values, autodiff vs FD, the candidate vs its reference, kinks."""

    fd: np.ndarray
    ad_fd: Comparison
    primary: Comparison  # hand vs autodiff (kinks skipped), or autodiff vs FD without a hand
    judged: Comparison  # ``primary`` with the kink entries judged by their one-sided derivatives
    kinks: list[KinkEntry]


def judge_columns(ad: np.ndarray, hand: np.ndarray | None, d: Differences, cols: np.ndarray, scale: float,
                  rtol: float, atol: float, fd_rtol: float, fd_atol: float) -> Judged:
    """Stages 3 and 4 on the columns ``cols`` (``ad``, ``hand`` and ``d`` hold those columns only)."""
    kink = find_kinks(d, scale, fd_rtol, fd_atol)
    fd, ad_fd = compare_with_fd(ad, d, kink, scale, fd_rtol, fd_atol)
    if hand is not None:
        primary = compare(hand, ad, atol * scale + rtol * np.abs(ad), skip=kink)
    else:
        primary = ad_fd
    kinks = judge_kinks(ad if hand is None else hand, d, kink, scale, fd_rtol, fd_atol, hand is not None, cols)
    local = [dataclasses.replace(k, col=int(np.searchsorted(cols, k.col))) for k in kinks]
    return Judged(fd, ad_fd, primary, judged_with_kinks(primary, local), kinks)


def compare_modes(jacfwd: np.ndarray | None, jacrev: np.ndarray, scale: float, rtol: float, atol: float) -> Comparison:
    """jacfwd against jacrev wherever both are finite (non-finite entries fail ``autodiff_finite``)."""
    if jacfwd is None:  # a custom_vjp function: reverse mode only, nothing to compare
        return compare(jacrev, jacrev, np.zeros_like(jacrev))
    both = np.isfinite(jacfwd) & np.isfinite(jacrev)
    return compare(jacfwd, jacrev, atol * scale + rtol * np.abs(jacrev), skip=~both)


def full_check(f, x, hand: np.ndarray | None, *, rtol: float, atol: float, fd_rtol: float, fd_atol: float,
               budget: int) -> JacobianCheck:
    """Every entry by every route (stages 1-4), then the verdict and the diagnosis."""
    ev = evaluate(f, x, budget=budget)  # f is evaluated on vec[x] and returns vec[f]: the Jacobians are 2-D already
    in_shape, out_shape = tuple(x.shape), ev.out_shape
    # jacfwd stands for autodiff; a custom_vjp function has reverse mode only, and jacrev stands in.
    ad_name, ad = ("jacfwd", ev.jacfwd) if ev.jacfwd is not None else ("jacrev", ev.jacrev)
    finite = np.isfinite(ad)
    scale = max(1.0, float(np.max(np.abs(ad[finite]), initial=0.0)))
    d = differences(ev)
    cols = np.arange(ad.shape[1])
    j = judge_columns(ad, hand, d, cols, scale, rtol, atol, fd_rtol, fd_atol)
    modes = compare_modes(ev.jacfwd, ev.jacrev, scale, *default_tolerances(x.dtype))

    notes = []
    if ev.jacfwd is None:
        notes.append("f has a jax.custom_vjp rule, which forward mode cannot differentiate: jacrev alone "
                     "stands for autodiff")
    if j.kinks:
        notes.append(f"{len(j.kinks)} entries at a kink were judged against one-sided derivatives")
    if hand is not None and j.judged.bad.any():
        notes.extend(diagnose(hand, ad, j.primary.tol))
    worst, mismatches = failing_entries(j.judged, j.ad_fd.worst_first(), modes.worst_first())
    max_abs, max_rel = max_errors(j.judged, ad if hand is not None else j.fd)
    routes = {"hand": hand, "jacfwd": ev.jacfwd, "jacrev": ev.jacrev, "fd": j.fd}
    return JacobianCheck(
        autodiff_finite=bool(finite.all() and np.isfinite(ev.jacrev).all()),
        autodiff_modes_agree=not modes.bad.any(),
        autodiff_matches_fd=not j.ad_fd.bad.any(),
        hand_matches_autodiff=None if hand is None else not j.primary.bad.any(),
        kinks_explain=all(k.accepted for k in j.kinks),
        max_abs_error=max_abs, max_rel_error=max_rel, worst=worst, mismatches=mismatches,
        mode_mismatches=modes.worst_first(), fd_mismatches=j.ad_fd.worst_first(),
        jacobians={k: v for k, v in routes.items() if v is not None},
        in_shape=in_shape, out_shape=out_shape, rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol,
        autodiff=ad_name, reference=ad_name if hand is not None else "fd", kinks=j.kinks, notes=notes,
    )
