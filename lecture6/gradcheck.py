"""Checking hand-written Jacobians and gradients against ``jax.jacfwd``, ``jax.jacrev`` and finite differences.

The lecture's layout: the Jacobian of ``f: R^m -> R^n`` is ``n x m``, **rows are the outputs, columns
the inputs**; a matrix input or output is flattened row by row (:func:`lecture6.matrix_derivative.vec`).
For a scalar ``f`` the hand value may be the gradient in the shape of ``x`` (the slide: the Jacobian is
the transposed gradient).

:func:`check_jacobian` runs in named stages, each a function below:

1. **evaluate** (:func:`_evaluate`, :func:`_hand_jacobian`): one compiled program computes ``jacfwd``,
   ``jacrev``, ``f(x)`` and ``f(x +- h e_j)`` for every input ``j`` at three step sizes (one batch);
   the hand Jacobian is evaluated by its own compiled program.
2. **finite differences** (:func:`_differences`): left, right and central differences at each step,
   with a bound on their rounding error.
3. **kinks** (:func:`_find_kinks`, :func:`_judge_kinks`, :func:`_judged_with_kinks`): entries where
   ``f`` is not differentiable at ``x`` along input ``j`` (the one-sided differences disagree at every
   step: ReLU or Heaviside at 0). There the candidate (the hand value, or ``jacfwd`` without one) must
   be a one-sided derivative or lie between the two (a subgradient); across a jump, the finite one.
4. **comparisons**, each a boolean field of :class:`JacobianCheck`:

   * ``autodiff_finite``: ``jacfwd`` and ``jacrev`` have no NaN or inf;
   * ``autodiff_modes_agree``: ``jacfwd == jacrev`` everywhere (:func:`_compare_modes`);
   * ``autodiff_matches_fd``: at every smooth entry ``jacfwd`` agrees with the central difference at one
     of the steps (:func:`_compare_with_fd`);
   * ``hand_matches_autodiff``: hand ``== jacfwd`` at every smooth entry (``None`` without a hand);
   * ``kinks_explain``: every kink entry is accepted by its one-sided derivatives.

5. **verdict** (:attr:`JacobianCheck.ok`): all of the above.
6. **diagnosis** (:func:`_diagnose`): names a transposed Jacobian, a sign flip, a constant factor.

**Finite differences judge autodiff.** ``jacfwd`` and ``jacrev`` are only as right as the derivative
rules they use; a wrong ``jax.custom_jvp`` makes both wrong in the same way, and a hand formula that
copies it agrees with them. So wherever ``f`` is smooth, autodiff must also agree with finite
differences, whatever the hand value, or the check fails and says so. A function with a
``jax.custom_vjp`` rule has no forward mode: ``jacrev`` stands for autodiff, and finite differences
judge its backward rule.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

# ---------------------------------------------------------------------------------------------------
# Tolerances and steps
# ---------------------------------------------------------------------------------------------------

#: Default (rtol, atol) for hand versus autodiff (and jacfwd versus jacrev), by the dtype of ``x``. Both
#: sides are exact derivatives evaluated in floating point, so they agree to a few ulps times the depth
#: of the computation: 1e-7 relative in float64 leaves five orders of magnitude of head-room over
#: rounding and still catches an entry off by 1e-5; float32 has ~1e-7 resolution, so 1e-4 relative.
#: ``atol`` is relative to the largest entry of the Jacobian (zeros compare on that scale).
TOLERANCES = {
    jnp.dtype("float64"): (1e-7, 1e-9),
    jnp.dtype("float32"): (1e-4, 1e-5),
    jnp.dtype("float16"): (1e-2, 1e-3),
    jnp.dtype("bfloat16"): (2e-2, 1e-2),
}

#: Finite differences are evaluated in float64 when x64 is on and in float32 when it is off (the
#: default). A central difference with step ``h = eps^(1/3) max(1, |x_j|)`` (6e-6 in float64, 5e-3 in
#: float32) is accurate to about ``eps^(2/3)`` (truncation plus rounding): ~4e-11 in float64 and
#: ~2e-5 in float32. Autodiff versus FD is compared with this (rtol, atol), ``atol`` again relative to
#: the largest entry, and never tighter than :data:`TOLERANCES` for the dtype of ``x`` (autodiff in
#: float32 is itself only that accurate). 1e-2 in float32 leaves room for the truncation error of
#: functions with large third derivatives at a step that large.
FD_TOLERANCES = {
    jnp.dtype("float64"): (1e-6, 1e-6),
    jnp.dtype("float32"): (1e-2, 1e-2),
}

#: The steps, as multiples of ``h``. A kink must show at all of them (a kink merely *near* x stops
#: showing once the step is shorter than its distance), and autodiff must agree with the central
#: difference at one of them (the shorter ones see past a kink just beside x). The shortest step keeps
#: the rounding error of a difference, about ``eps |f| / step``, well under the tolerance: 6e-10 in
#: float64, 5e-5 in float32.
FD_SHRINKS = {
    jnp.dtype("float64"): (1.0, 1e-2, 1e-4),
    jnp.dtype("float32"): (1.0, 1e-1, 1e-2),
}

#: Rounding error allowed in each evaluation of f, in ulps of the largest |f| involved. It enters every
#: FD comparison as ``FD_NOISE_ULPS * eps * |f| / step``: negligible for well-scaled f, and what keeps
#: an f of size 1e6 with derivatives of size 1 from failing on rounding alone.
FD_NOISE_ULPS = 16


def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` used by :func:`check_jacobian` for hand versus autodiff, for inputs of ``dtype``."""
    return TOLERANCES.get(jnp.dtype(dtype), TOLERANCES[jnp.dtype("float32")])


def _fd_dtype() -> np.dtype:
    return np.dtype(np.float64) if jax.config.jax_enable_x64 else np.dtype(np.float32)


def _fd_tolerances(x_dtype, fd_rtol, fd_atol) -> tuple[float, float]:
    r, a = FD_TOLERANCES[jnp.dtype(_fd_dtype())]
    r_ad, a_ad = default_tolerances(x_dtype)
    return (max(r, r_ad) if fd_rtol is None else float(fd_rtol),
            max(a, a_ad) if fd_atol is None else float(fd_atol))


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index in ``shape`` of entry ``flat`` of ``vec`` (row-major)."""
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


# ---------------------------------------------------------------------------------------------------
# Compiled programs, shared between checks of functions with the same structure
# ---------------------------------------------------------------------------------------------------
# A check is usually called with a fresh lambda (``lambda M: linear_map(M, x)``), which jax.jit would
# trace and compile anew every time, and evaluating op by op compiles every primitive for every new
# shape: either way most of a check's time goes to XLA (benchmarks/bench_jacobian.py: op by op, 0.46 s
# for a new structure and 0.02 s for a seen one; here 0.16 s and 0.006 s). Here f is traced to a jaxpr whose closed-over
# arrays become arguments, and the compiled program is cached under two keys:
#
# * the jaxpr's structure (:func:`_jaxpr_key`: primitives, parameters, wiring, types and every value
#   baked in), so a function already seen costs one trace and no lowering;
# * the lowered StableHLO text, for jaxprs whose parameters cannot be compared by value (a custom_jvp
#   rule is a fresh object at every trace): two programs with the same text compute the same thing.
#
# Either way the constants are passed anew at each call, never taken from the cached program.

_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 512
#: XLA options for programs that run once or a few times on a few hundred numbers (the checker's, and
#: tests'): without LLVM's optimizations and XLA's newer fusion emitters they compile about 3x faster
#: (``benchmarks/bench_jacobian.py``: 0.16 s against 0.48 s per check of a new 2-layer composition, on a
#: loaded 2-core box) and change no result beyond the order of a few roundings, far inside every
#: tolerance here. ``jax.jit(f, compiler_options=COMPILER_OPTIONS)``; :func:`compile_options` drops the
#: options an older XLA does not know.
COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
_UNKNOWN_OPTIONS: set[str] = set()


def compile_options() -> dict:
    """:data:`COMPILER_OPTIONS` less any this XLA has rejected."""
    return {k: v for k, v in COMPILER_OPTIONS.items() if k not in _UNKNOWN_OPTIONS}


def _compile(lowered):
    while True:
        try:
            return lowered.compile(compiler_options=compile_options())
        except jax.errors.JaxRuntimeError as e:  # "No such compile option: 'xla_...'" from an older XLA
            unknown = [k for k in compile_options() if f"'{k}'" in str(e)]
            if "No such compile option" not in str(e) or not unknown:
                raise
            _UNKNOWN_OPTIONS.update(unknown)


class _NoKey(Exception):
    """A jaxpr parameter that cannot be compared by value."""


def _value_key(a) -> tuple:
    a = np.asarray(a)
    return ("value", a.dtype.str, a.shape, a.tobytes())


def _param_key(p):
    if isinstance(p, jex_core.ClosedJaxpr):
        return ("closed_jaxpr", _jaxpr_key(p.jaxpr), tuple(_value_key(c) for c in p.consts))
    if isinstance(p, jex_core.Jaxpr):
        return ("jaxpr", _jaxpr_key(p))
    if isinstance(p, (tuple, list)):
        return (type(p), tuple(_param_key(q) for q in p))
    if isinstance(p, dict):
        return (dict, tuple((k, _param_key(v)) for k, v in sorted(p.items())))
    if isinstance(p, (float, complex, np.ndarray, np.generic, jax.Array)):
        return _value_key(p)  # by bits: 0.0 == -0.0 and nan != nan would mislead
    try:
        hash(p)
    except TypeError:
        raise _NoKey(type(p).__name__) from None
    return (type(p), p)  # ints, strings, dtypes, enums, shardings: by value; functions: by identity


def _jaxpr_key(jaxpr) -> tuple:
    """Everything that determines what ``jaxpr`` computes from its arguments, as a hashable tuple."""
    names: dict = {}

    def atom(v):
        if isinstance(v, jex_core.Literal):
            return ("literal", _value_key(v.val), v.aval)
        return names.setdefault(v, (len(names), v.aval))  # variables by first appearance, with type

    return (
        tuple(atom(v) for v in jaxpr.constvars),
        tuple(atom(v) for v in jaxpr.invars),
        tuple((e.primitive, _param_key(e.params), tuple(atom(v) for v in e.invars),
               tuple(atom(v) for v in e.outvars)) for e in jaxpr.eqns),
        tuple(atom(v) for v in jaxpr.outvars),
        _param_key(tuple(sorted(map(repr, jaxpr.effects)))),
    )


def _trace(fn: Callable, *args):
    """``fn`` traced at ``args``: ``(closed jaxpr, output shape pytree)``."""
    return jax.make_jaxpr(fn, return_shape=True)(*args)


def _as_function(closed, consts, out_shape) -> Callable:
    tree = jax.tree.structure(out_shape)

    def fn(*args):
        return jax.tree.unflatten(tree, jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(closed.jaxpr, consts))(*args))

    return fn


def _cache(key, compiled=None):
    """Look ``key`` up (``compiled=None``) or store ``compiled`` under it, least recently used first out."""
    if compiled is None:
        compiled = _PROGRAMS.get(key)
        if compiled is not None:
            _PROGRAMS.move_to_end(key)
        return compiled
    _PROGRAMS[key] = compiled
    while len(_PROGRAMS) > _MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return compiled


def _run(program: Callable, program_key, traced: list, *args):
    """``program(fns, *args)``, ``fns`` the traced functions, compiled once per distinct program.

    ``program_key`` names ``program`` and its static settings (it stands for the program in the key).
    """
    consts = [list(closed.consts) for closed, _ in traced]
    leaves, treedef = jax.tree.flatten((consts, args))
    avals = (treedef, tuple((np.shape(a), jnp.dtype(a.dtype).str, bool(getattr(a, "weak_type", False)))
                            for a in leaves))
    try:
        key = (program_key, avals, tuple((_jaxpr_key(c.jaxpr), jax.tree.structure(s)) for c, s in traced))
    except _NoKey:
        key = None
    compiled = None if key is None else _cache(key)
    if compiled is None:

        def run(consts, *args):
            fns = [_as_function(closed, c, shape) for (closed, shape), c in zip(traced, consts)]
            return program(fns, *args)

        lowered = jax.jit(run).lower(consts, *args)
        text_key = (lowered.as_text(), avals)
        compiled = _cache(text_key) or _cache(text_key, _compile(lowered))
        if key is not None:
            _cache(key, compiled)
    return compiled(consts, *args)


# ---------------------------------------------------------------------------------------------------
# Stage 1: evaluate autodiff, f at the perturbed points, and the hand Jacobian
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Evaluation:
    """Everything computed from ``f``; Jacobians ``(n_out, n_in)``, differences per step level."""

    out_shape: tuple[int, ...]  # the shape of f(x)
    jacfwd: np.ndarray | None  # (n_out, n_in); None when f has a custom_vjp rule (no forward mode)
    jacrev: np.ndarray | None
    f0: np.ndarray  # (n_out,): f(x), in the FD dtype
    fp: np.ndarray  # (L, n_out, n_in): f(x + hp[l, j] e_j)
    fm: np.ndarray  # (L, n_out, n_in): f(x - hm[l, j] e_j)
    hp: np.ndarray  # (L, n_in): the steps actually taken (x_j + h is rounded to the FD dtype)
    hm: np.ndarray
    eps: float  # machine epsilon of the FD dtype


def _evaluation_program(fns, v_ad, v_fd, plus, minus, *, autodiff: bool, forward: bool = True):
    """jacfwd, jacrev, f(x) and f with entry j replaced by ``plus[l, j]`` / ``minus[l, j]``, for all l, j.

    ``fns`` are f of ``vec[x]`` (for autodiff, and for finite differences); their outputs are flattened
    here, so that every Jacobian is 2-D.
    """
    g_ad, g_fd = ((lambda v, fn=fn: jnp.reshape(fn(v), (-1,))) for fn in fns)
    cols = jnp.arange(v_fd.shape[0])

    def at_each_entry(values):  # (n_in,) -> (n_in, n_out): f with entry j set to values[j]
        return jax.vmap(lambda j, value: g_fd(jnp.where(cols == j, value, v_fd)))(cols, values)

    levels = plus.shape[0]
    f_steps = jax.vmap(at_each_entry)(jnp.concatenate([plus, minus]))  # one batch: half the program
    out = (g_fd(v_fd), f_steps[:levels], f_steps[levels:])
    if autodiff:
        out = (jax.jacfwd(g_ad)(v_ad) if forward else jnp.zeros(()), jax.jacrev(g_ad)(v_ad), *out)
    return out


def _uses_custom_vjp(jaxpr) -> bool:
    """Whether ``jaxpr`` calls a ``jax.custom_vjp`` function, which forward mode cannot differentiate."""
    return any(e.primitive.name == "custom_vjp_call" or any(map(_uses_custom_vjp, jex_core.jaxprs_in_params(e.params)))
               for e in jaxpr.eqns)


def _evaluate(f: Callable, x: np.ndarray | jax.Array, *, autodiff: bool = True) -> _Evaluation:
    dtype = _fd_dtype()
    v_fd = np.asarray(x, dtype=dtype).reshape(-1)
    eps = float(np.finfo(dtype).eps)
    h = (eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(v_fd)))[None, :] * np.asarray(FD_SHRINKS[dtype])[:, None]
    plus = v_fd[None, :] + h.astype(dtype)  # rounded in the FD dtype: the step is plus - v, not h
    minus = v_fd[None, :] - h.astype(dtype)

    def f_of_vec(v):
        return f(jnp.reshape(v, x.shape))

    v_ad = np.asarray(x).reshape(-1)  # NumPy: an eager jnp.reshape would compile a program per shape
    traced_ad = _trace(f_of_vec, v_ad)
    out_aval = traced_ad[1]
    if not (hasattr(out_aval, "dtype") and jnp.issubdtype(out_aval.dtype, jnp.floating)):
        raise TypeError(f"check_jacobian needs f to return one real floating-point array, got {out_aval}")
    traced_fd = traced_ad if v_ad.dtype == dtype else _trace(f_of_vec, v_fd)
    forward = not _uses_custom_vjp(traced_ad[0].jaxpr)
    values = _run(functools.partial(_evaluation_program, autodiff=autodiff, forward=forward),
                  ("evaluation", autodiff, forward), [traced_ad, traced_fd], v_ad, v_fd, plus, minus)
    out = [np.asarray(o, dtype=np.float64) for o in values]
    jf, jr = (out.pop(0), out.pop(0)) if autodiff else (None, None)
    jf = jf if forward else None
    f0, fp, fm = out
    return _Evaluation(
        out_shape=tuple(out_aval.shape), jacfwd=jf, jacrev=jr, f0=f0,
        fp=np.swapaxes(fp, 1, 2), fm=np.swapaxes(fm, 1, 2),
        hp=(plus - v_fd[None, :]).astype(np.float64), hm=(v_fd[None, :] - minus).astype(np.float64), eps=eps,
    )


def _call_program(fns, x):
    return fns[0](x)


_NOT_TRACEABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


def _hand_jacobian(jac: Callable, x: np.ndarray | jax.Array, in_shape, out_shape) -> np.ndarray:
    """``jac(x)`` as the 2-D Jacobian; compiled when ``jac`` is traceable, else called as it is."""
    try:
        value = _run(_call_program, "call", [_trace(jac, x)], x)
    except _NOT_TRACEABLE:  # a hand Jacobian written with NumPy, or with Python control flow on x
        value = jac(x)
    return _as_2d_jacobian(value, in_shape, out_shape)


def _as_2d_jacobian(jac_value, in_shape, out_shape) -> np.ndarray:
    """Accept the 2-D Jacobian, the full ``out_shape + in_shape`` tensor, or (scalar f) the gradient."""
    J = np.asarray(jac_value, dtype=np.float64)
    n_out = int(np.prod(out_shape))
    n_in = int(np.prod(in_shape))
    if J.shape == (n_out, n_in):
        return J
    if J.shape == tuple(out_shape) + tuple(in_shape):
        return J.reshape(n_out, n_in)
    if n_out == 1 and J.shape in {tuple(in_shape), (n_in,), (n_in, 1)}:
        # The slide: for scalar f the Jacobian is the transpose of the gradient.
        return J.reshape(1, n_in)
    hint = ("; it looks TRANSPOSED: rows must be the outputs of f, columns its inputs"
            if J.shape == (n_in, n_out) else "")
    raise ValueError(
        f"hand Jacobian has shape {J.shape}{hint}; for f: {tuple(in_shape)} -> {tuple(out_shape)} expected the "
        f"2-D Jacobian {(n_out, n_in)} (rows = outputs, columns = inputs)"
        + (f" or the gradient {tuple(in_shape)}" if n_out == 1 else "")
    )


# ---------------------------------------------------------------------------------------------------
# Stage 2: finite differences
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Differences:
    """One-sided and central differences, ``(L, n_out, n_in)``, one slice per step level."""

    left: np.ndarray  # (f(x) - f(x - h e_j)) / h
    right: np.ndarray  # (f(x + h e_j) - f(x)) / h
    central: np.ndarray
    noise: np.ndarray  # bound on the rounding error of a central difference
    h: np.ndarray  # (L, n_in): the shorter of the two steps


def _differences(ev: _Evaluation) -> _Differences:
    hp, hm = ev.hp[:, None, :], ev.hm[:, None, :]
    f0 = ev.f0[None, :, None]
    size = np.maximum(np.abs(f0), np.maximum(np.abs(ev.fp), np.abs(ev.fm)))
    h = np.minimum(ev.hp, ev.hm)
    with np.errstate(invalid="ignore", over="ignore"):
        return _Differences(
            left=(f0 - ev.fm) / hm,
            right=(ev.fp - f0) / hp,
            central=(ev.fp - ev.fm) / (hp + hm),
            noise=FD_NOISE_ULPS * ev.eps * size / h[:, None, :],
            h=h,
        )


# ---------------------------------------------------------------------------------------------------
# Stage 3: kinks
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class KinkEntry:
    """An entry where ``f`` is not differentiable at ``x`` along one input."""

    row: int
    col: int
    left: float  # one-sided derivative from below, (f(x) - f(x - h e_j)) / h
    right: float  # one-sided derivative from above, (f(x + h e_j) - f(x)) / h
    hand: float | None
    accepted: bool
    why: str


def _find_kinks(d: _Differences, scale: float, fd_rtol: float, fd_atol: float) -> np.ndarray:
    """``(n_out, n_in)`` mask: the one-sided differences disagree at every step (NaN never counts)."""
    gap = np.abs(d.left - d.right)
    with np.errstate(invalid="ignore"):
        return np.all(gap > fd_atol * scale + fd_rtol * np.abs(d.right) + 2 * d.noise, axis=0)


def _judge_kinks(cand: np.ndarray, d: _Differences, kink: np.ndarray, scale: float, fd_rtol: float,
                 fd_atol: float, hand_given: bool) -> list[KinkEntry]:
    """Accept a candidate value at a kink if it is a one-sided derivative or between the two."""
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
        kinks.append(KinkEntry(int(r), int(c), lo, hi, hv if hand_given else None, bool(accepted), why))
    return kinks


# ---------------------------------------------------------------------------------------------------
# Stage 4: comparisons
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Comparison:
    """``cand`` against ``ref`` entry by entry: errors, tolerances and the entries outside them."""

    abs_err: np.ndarray
    tol: np.ndarray
    bad: np.ndarray  # NaN counts as bad

    def worst(self) -> tuple[int, int]:
        """The entry furthest outside its tolerance (relative to it), NaN first."""
        score = self.score()
        return tuple(int(i) for i in np.unravel_index(np.argmax(score), score.shape))

    def worst_first(self) -> list[tuple[int, int]]:
        score = self.score()
        return [tuple(int(i) for i in np.unravel_index(k, score.shape))
                for k in np.argsort(-score, axis=None, kind="stable") if self.bad.flat[k]]

    def score(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.abs_err / np.maximum(self.tol, np.finfo(np.float64).tiny)
        return np.where(np.isnan(s), np.inf, s)


def _compare(cand: np.ndarray, ref: np.ndarray, tol: np.ndarray, skip: np.ndarray | None = None) -> _Comparison:
    abs_err = np.abs(cand - ref)
    bad = ~(abs_err <= tol)
    if skip is not None:
        bad &= ~skip
    return _Comparison(abs_err, tol, bad)


def _judged_with_kinks(primary: _Comparison, kinks: list[KinkEntry]) -> _Comparison:
    """``primary`` with every kink entry judged by its one-sided derivatives instead of the reference."""
    abs_err, bad = primary.abs_err.copy(), primary.bad.copy()
    for k in kinks:
        bad[k.row, k.col] = not k.accepted
        if k.accepted:
            abs_err[k.row, k.col] = 0.0
    return _Comparison(abs_err, primary.tol, bad)


def _compare_modes(ev: _Evaluation, scale: float, rtol: float, atol: float) -> _Comparison:
    """jacfwd against jacrev wherever both are finite (non-finite entries fail ``autodiff_finite``)."""
    if ev.jacfwd is None:  # a custom_vjp function: reverse mode only, nothing to compare
        return _compare(ev.jacrev, ev.jacrev, np.zeros_like(ev.jacrev))
    both = np.isfinite(ev.jacfwd) & np.isfinite(ev.jacrev)
    return _compare(ev.jacfwd, ev.jacrev, atol * scale + rtol * np.abs(ev.jacrev), skip=~both)


def _compare_with_fd(ad: np.ndarray, d: _Differences, kink: np.ndarray, scale: float, fd_rtol: float,
                     fd_atol: float) -> tuple[np.ndarray, _Comparison]:
    """Autodiff against the central difference at the first step that agrees (the longest by default).

    Returns the finite-difference Jacobian so chosen, and the comparison; kink entries are skipped.
    """
    tol = fd_atol * scale + fd_rtol * np.abs(ad)[None] + d.noise
    with np.errstate(invalid="ignore"):
        agree = np.abs(ad[None] - d.central) <= tol
    level = np.argmax(agree, axis=0)[None]  # the first level that agrees; 0 where none does
    fd = np.take_along_axis(d.central, level, axis=0)[0]
    return fd, _compare(ad, fd, np.take_along_axis(tol, level, axis=0)[0], skip=kink)


# ---------------------------------------------------------------------------------------------------
# Stage 5 and 6: verdict and diagnosis
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class JacobianCheck:
    """The result of :func:`check_jacobian`. ``ok`` is the conjunction of the five verdict fields.

    Attributes:
      autodiff_finite: ``jacfwd`` and ``jacrev`` have no NaN or inf.
      autodiff_modes_agree: ``jacfwd`` and ``jacrev`` agree everywhere (hand tolerances by dtype).
      autodiff_matches_fd: at every smooth entry, autodiff agrees with a central difference.
      hand_matches_autodiff: the hand Jacobian agrees with ``jacfwd`` at every smooth entry; ``None``
        when no hand Jacobian was given.
      kinks_explain: at every kink the candidate is a one-sided derivative or between the two.
      max_abs_error, max_rel_error: largest ``|cand - ref|`` and ``|cand - ref| / |ref|`` over the
        entries that count (kink entries accepted as one-sided derivatives are excluded); ``cand`` is the
        hand Jacobian and ``ref`` jacfwd, or without a hand Jacobian ``cand`` is jacfwd and ``ref`` FD.
      worst: ``(row, col)`` of the worst entry of the 2-D Jacobian (rows = outputs, columns = inputs,
        each side flattened by ``vec``).
      mismatches: ``(row, col)`` of every entry where ``cand`` is outside tolerance, worst first.
      mode_mismatches, fd_mismatches: the entries where jacfwd and jacrev disagree, and the smooth
        entries where autodiff and finite differences disagree, worst first.
      jacobians: 2-D Jacobians by route: ``"hand"`` (if given), ``"jacfwd"``, ``"jacrev"``, ``"fd"``
        (central differences, at the step that agrees with autodiff where one does).
      autodiff: the route that stands for autodiff: ``"jacfwd"``, or ``"jacrev"`` for a function with a
        ``jax.custom_vjp`` rule (forward mode cannot differentiate it; there is no ``"jacfwd"`` then).
      reference: what the candidate was compared with: ``autodiff`` with a hand Jacobian, else ``"fd"``.
      kinks: entries where ``f`` is not differentiable at ``x``, with the one-sided derivatives.
      notes: diagnoses (a transpose, a sign flip, a constant factor) and remarks; never the verdict.
    """

    autodiff_finite: bool
    autodiff_modes_agree: bool
    autodiff_matches_fd: bool
    hand_matches_autodiff: bool | None
    kinks_explain: bool
    max_abs_error: float
    max_rel_error: float
    worst: tuple[int, int]
    mismatches: list[tuple[int, int]]
    mode_mismatches: list[tuple[int, int]]
    fd_mismatches: list[tuple[int, int]]
    jacobians: dict[str, np.ndarray]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    rtol: float
    atol: float
    fd_rtol: float
    fd_atol: float
    autodiff: str
    reference: str
    kinks: list[KinkEntry]
    notes: list[str]
    in_labels: Callable[[int], str] | None = None  # column -> input name (pytree inputs)
    in_desc: str | None = None  # how to describe the input in the report (pytree inputs)

    @property
    def ok(self) -> bool:
        """The verdict: every comparison passed (``hand_matches_autodiff`` may be ``None``: no hand)."""
        return (self.autodiff_finite and self.autodiff_modes_agree and self.autodiff_matches_fd
                and self.kinks_explain and self.hand_matches_autodiff is not False)

    def entry_name(self, row: int, col: int) -> str:
        """``d f[i] / d x[j]`` written with indices in the original shapes (or pytree paths)."""
        i = _index(row, self.out_shape)
        fi = "f" if not self.out_shape else f"f{list(i)}"
        xj = self.in_labels(col) if self.in_labels else f"x{list(_index(col, self.in_shape))}"
        return f"d{fi}/d{xj}"

    def report(self, max_entries: int = 5) -> str:
        """A human-readable report: verdict, worst entry with both values, other failures, kinks."""
        J = self.jacobians
        ref = J[self.reference]
        cand_name = "hand" if "hand" in J else self.autodiff
        cand = J[cand_name]
        shape2d = ref.shape
        lines = [
            f"Jacobian check {'PASSED' if self.ok else 'FAILED'}: f maps "
            f"{self.in_desc or self.in_shape or 'scalar'} -> "
            f"{self.out_shape or 'scalar'}, 2-D Jacobian {shape2d[0]}x{shape2d[1]} "
            f"(rows = outputs, columns = inputs, row-major vec).",
            f"  {cand_name} vs {self.reference}: max abs error {self.max_abs_error:.3e}, "
            f"max rel error {self.max_rel_error:.3e} (rtol {self.rtol:g}, atol {self.atol:g}).",
        ]
        r, c = self.worst
        lines.append(
            f"  worst entry (row {r}, col {c}) = {self.entry_name(r, c)}: "
            f"{cand_name} {cand[r, c]:+.10g}  vs  {self.reference} {ref[r, c]:+.10g}"
            + (f"  (fd {J['fd'][r, c]:+.6g})" if self.reference != "fd" else "")
        )
        if len(self.mismatches) > 1:
            lines.append(f"  {len(self.mismatches)} entries outside tolerance; the first {max_entries}:")
            for rr, cc in self.mismatches[:max_entries]:
                lines.append(
                    f"    (row {rr}, col {cc}) {self.entry_name(rr, cc)}: "
                    f"{cand_name} {cand[rr, cc]:+.6g} vs {self.reference} {ref[rr, cc]:+.6g}"
                )
        if not self.autodiff_finite:
            lines.append("  autodiff Jacobian has non-finite entries (NaN or inf): f is not differentiable "
                         "at x, or its derivative overflows")
        if not self.autodiff_modes_agree:
            rr, cc = self.mode_mismatches[0]
            lines.append(
                f"  jacfwd and jacrev DISAGREE at {len(self.mode_mismatches)} entries, worst (row {rr}, col {cc}) "
                f"{self.entry_name(rr, cc)}: jacfwd {J['jacfwd'][rr, cc]:+.10g} vs jacrev "
                f"{J['jacrev'][rr, cc]:+.10g}; a custom derivative rule (jax.custom_jvp / jax.custom_vjp) "
                "is inconsistent: not linear in the tangent, or its forward and reverse rules differ"
            )
        if not self.autodiff_matches_fd and self.reference != "fd":
            rr, cc = self.fd_mismatches[0]
            lines.append(
                f"  autodiff DISAGREES with finite differences at {len(self.fd_mismatches)} smooth entries "
                f"(rtol {self.fd_rtol:g}, atol {self.fd_atol:g}), worst (row {rr}, col {cc}) "
                f"{self.entry_name(rr, cc)}: {self.autodiff} {J[self.autodiff][rr, cc]:+.10g} vs fd "
                f"{J['fd'][rr, cc]:+.10g}; "
                "autodiff is wrong here (a custom derivative rule that does not match f), or f is not smooth "
                "at the scale of the step. A hand Jacobian that agrees with autodiff inherits its error."
            )
        for k in self.kinks:
            verdict = "accepted" if k.accepted else "REJECTED"
            hand = "-" if k.hand is None else f"{k.hand:+.6g}"
            lines.append(
                f"  kink at (row {k.row}, col {k.col}) {self.entry_name(k.row, k.col)}: f is not "
                f"differentiable here (left {k.left:+.6g}, right {k.right:+.6g}); hand {hand} {verdict}: "
                f"{k.why}"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _diagnose(hand: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> list[str]:
    """Name common mistakes: a transposed Jacobian, a sign flip, a constant factor."""
    if (ref.shape[0] == ref.shape[1] and not np.allclose(ref, ref.T)
            and np.allclose(hand, ref.T, rtol=1e-6, atol=1e-9)):
        return ["hand equals the TRANSPOSE of the Jacobian: rows must be outputs, columns inputs"]
    if np.allclose(hand, -ref, rtol=1e-6, atol=1e-9):
        return ["hand equals MINUS the Jacobian: a sign error"]
    nz = np.abs(ref) > 1e-12
    if nz.any():
        ratio = hand[nz] / ref[nz]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and np.allclose(hand[~nz], 0) and ratio[0] != 1:
            return [f"hand equals {ratio[0]:.6g} times the Jacobian: a constant factor is off"]
    flipped = (np.abs(hand + ref) <= tol) & (np.abs(hand - ref) > tol)
    if flipped.any():
        r, c = np.argwhere(flipped)[0]
        return [f"{int(flipped.sum())} entries have the opposite sign, e.g. (row {r}, col {c})"]
    return []


def _max_errors(comp: _Comparison, ref: np.ndarray) -> tuple[float, float]:
    if not comp.abs_err.size:
        return 0.0, 0.0
    abs_err = np.where(np.isnan(comp.abs_err), np.inf, comp.abs_err)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(np.abs(ref) > 0, abs_err / np.abs(ref), np.where(abs_err > 0, np.inf, 0.0))
    return float(abs_err.max()), float(np.where(np.isnan(rel), np.inf, rel).max())


# ---------------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------------


def _validate(x) -> np.ndarray | jax.Array:
    x = x if isinstance(x, jax.Array) else np.asarray(x)  # (jnp.asarray would compile per shape)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"check_jacobian needs a real floating-point x, got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"check_jacobian needs a non-empty x, got shape {x.shape}")
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"check_jacobian: x contains NaN or inf: {x}")
    return x


def check_jacobian(
    f: Callable,
    x,
    jac: Callable | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    fd_rtol: float | None = None,
    fd_atol: float | None = None,
) -> JacobianCheck:
    """Check a hand-written Jacobian of ``f`` at ``x`` against ``jacfwd``, ``jacrev`` and finite differences.

    Args:
      f: a JAX-traceable function of one array (vector or matrix) returning a scalar, vector or matrix.
      x: the point, a non-empty float array. A matrix ``x`` is differentiated with respect to ``vec[x]``.
      jac: ``jac(x)`` returning the 2-D Jacobian ``(f.size, x.size)``, the full ``f.shape + x.shape``
        tensor, or for scalar ``f`` the gradient in the shape of ``x``. Without ``jac``, autodiff
        itself is checked against finite differences.
      rtol, atol: tolerances for hand versus autodiff; default by the dtype of ``x``
        (:data:`TOLERANCES`). ``atol`` is scaled by the largest entry of the Jacobian.
      fd_rtol, fd_atol: tolerances for autodiff versus finite differences; default
        :data:`FD_TOLERANCES` (see there). Loosen them only for an f whose finite differences are
        known to be poor (badly scaled, or nearly singular at ``x``).

    Returns:
      A :class:`JacobianCheck`; ``result.ok`` is the verdict, ``print(result)`` gives the report.
    """
    x = _validate(x)
    d_rtol, d_atol = default_tolerances(x.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    fd_rtol, fd_atol = _fd_tolerances(x.dtype, fd_rtol, fd_atol)

    ev = _evaluate(f, x)  # f is evaluated on vec[x] and returns vec[f]: the Jacobians are 2-D already
    in_shape, out_shape = tuple(x.shape), ev.out_shape
    # jacfwd stands for autodiff; a custom_vjp function has reverse mode only, and jacrev stands in.
    ad_name, ad = ("jacfwd", ev.jacfwd) if ev.jacfwd is not None else ("jacrev", ev.jacrev)
    hand = None if jac is None else _hand_jacobian(jac, x, in_shape, out_shape)
    d = _differences(ev)
    finite = np.isfinite(ad)
    scale = max(1.0, float(np.max(np.abs(ad[finite]), initial=0.0)))

    kink = _find_kinks(d, scale, fd_rtol, fd_atol)
    modes = _compare_modes(ev, scale, *default_tolerances(x.dtype))
    fd, ad_fd = _compare_with_fd(ad, d, kink, scale, fd_rtol, fd_atol)
    if hand is not None:
        cand, ref, reference = hand, ad, ad_name
        primary = _compare(hand, ad, atol * scale + rtol * np.abs(ad), skip=kink)
    else:
        cand, ref, reference, primary = ad, fd, "fd", ad_fd
    kinks = _judge_kinks(cand, d, kink, scale, fd_rtol, fd_atol, hand is not None)

    judged = _judged_with_kinks(primary, kinks)

    notes = []
    if ev.jacfwd is None:
        notes.append("f has a jax.custom_vjp rule, which forward mode cannot differentiate: jacrev alone "
                     "stands for autodiff")
    if kinks:
        notes.append(f"{len(kinks)} entries at a kink were judged against one-sided derivatives")
    if hand is not None and judged.bad.any():
        notes.extend(_diagnose(hand, ad, primary.tol))
    max_abs, max_rel = _max_errors(judged, ref)
    routes = {"hand": hand, "jacfwd": ev.jacfwd, "jacrev": ev.jacrev, "fd": fd}
    return JacobianCheck(
        autodiff_finite=bool(finite.all() and np.isfinite(ev.jacrev).all()),
        autodiff_modes_agree=not modes.bad.any(),
        autodiff_matches_fd=not ad_fd.bad.any(),
        hand_matches_autodiff=None if hand is None else not primary.bad.any(),
        kinks_explain=all(k.accepted for k in kinks),
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        worst=judged.worst(),
        mismatches=judged.worst_first(),
        mode_mismatches=modes.worst_first(),
        fd_mismatches=ad_fd.worst_first(),
        jacobians={k: v for k, v in routes.items() if v is not None},
        in_shape=in_shape,
        out_shape=out_shape,
        rtol=rtol,
        atol=atol,
        fd_rtol=fd_rtol,
        fd_atol=fd_atol,
        autodiff=ad_name,
        reference=reference,
        kinks=kinks,
        notes=notes,
    )


def assert_jacobian(f: Callable, x, jac: Callable, **kw) -> JacobianCheck:
    """Like :func:`check_jacobian`, but raise ``AssertionError`` with the report when the check fails."""
    result = check_jacobian(f, x, jac, **kw)
    if not result.ok:
        raise AssertionError(result.report())
    return result


def finite_difference_jacobian(f: Callable, x) -> np.ndarray:
    """Central-difference 2-D Jacobian of ``f`` at ``x`` (float64 when x64 is on), step per entry."""
    x = _validate(x)
    return _differences(_evaluate(f, x, autodiff=False)).central[0]


def check_gradient(f: Callable, params, grad: Callable, **kw) -> JacobianCheck:
    """Check a hand-written gradient of a scalar ``f(params)`` whose argument is a pytree.

    ``params`` is any pytree of arrays (the MLP's list of ``{"W", "b"}`` layers, a ``PPCA`` tuple);
    ``grad(params)`` returns a pytree of the same structure. The check is :func:`check_jacobian` on the
    flattened parameters, and the report names entries by their path, e.g. ``df/dparams[1]['W'][0, 2]``.
    """
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params)
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    labels, starts = [], []
    offset = 0
    for path, leaf in leaves:
        labels.append((jax.tree_util.keystr(path), tuple(np.shape(leaf))))
        starts.append(offset)
        offset += int(np.size(leaf))

    def label(col: int) -> str:
        k = int(np.searchsorted(starts, col, side="right")) - 1
        name, shape = labels[k]
        idx = _index(col - starts[k], shape)
        return f"params{name}" + (f"[{', '.join(map(str, idx))}]" if idx else "")

    def f_flat(v):
        return f(unravel(v))

    want = (jax.tree.structure(params), [jnp.shape(a) for a in jax.tree.leaves(params)])

    def grad_flat(v):
        g = grad(unravel(v))
        got = (jax.tree.structure(g), [jnp.shape(a) for a in jax.tree.leaves(g)])
        if got != want:
            raise ValueError(f"grad(params) must have the structure and shapes of params: got {got}, "
                             f"expected {want}")
        return ravel_pytree(g)[0]

    out_shape = jax.eval_shape(f, params).shape
    if int(np.prod(out_shape)) != 1:
        raise ValueError(f"check_gradient needs a scalar f, got output shape {out_shape}")
    result = check_jacobian(f_flat, flat, grad_flat, **kw)
    result.in_labels = label
    result.in_desc = f"params ({flat.size} entries in {len(leaves)} arrays)"
    return result


def assert_gradient(f: Callable, params, grad: Callable, **kw) -> JacobianCheck:
    """Like :func:`check_gradient`, but raise ``AssertionError`` with the report when the check fails."""
    result = check_gradient(f, params, grad, **kw)
    if not result.ok:
        raise AssertionError(result.report())
    return result
