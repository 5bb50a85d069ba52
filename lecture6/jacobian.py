"""Jacobian matrices, vectorization, and a checker for hand-written Jacobians.

The lecture's conventions, used everywhere in this package:

* The Jacobian of ``f: R^m -> R^n`` is ``n x m``: **rows are the outputs, columns are the inputs**.
* A matrix is turned into a vector **row by row**: ``vec[W] = [W11 ... W1m ... Wn1 ... Wnm]``
  (:func:`vec`, :func:`unvec`). A function of a matrix, or with a matrix output, has the 2-D Jacobian
  ``d vec[f] / d vec[x]``.
* For a scalar ``f`` the Jacobian is the transpose of the gradient: ``1 x m`` versus ``m`` (or the shape
  of ``x``).

:func:`check_jacobian` compares a hand-written Jacobian with ``jax.jacfwd``, ``jax.jacrev`` and central
finite differences, and names the worst entry in the lecture's layout. Where ``f`` is not
differentiable at ``x`` (ReLU or Heaviside at 0) it compares the hand value with the one-sided
derivatives instead, accepts it when it is a valid one-sided derivative (or lies between the two, a
subgradient), and says so in the report.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------------------------------------------
# vec / unvec
# ---------------------------------------------------------------------------------------------------


def vec(A) -> jax.Array:
    """Row-major vectorization, exactly the slide's ``vec[W] = [W11 ... W1m ... Wn1 ... Wnm]``."""
    return jnp.reshape(jnp.asarray(A), (-1,))


def unvec(v, shape: Sequence[int]) -> jax.Array:
    """Inverse of :func:`vec`: the vector ``v`` laid out row by row into ``shape``."""
    v = jnp.asarray(v)
    shape = tuple(int(s) for s in shape)
    if v.ndim != 1:
        raise ValueError(f"unvec expects a 1-D vector, got shape {v.shape}")
    if v.size != int(np.prod(shape)):
        raise ValueError(f"unvec: a vector of length {v.size} cannot fill shape {shape}")
    return jnp.reshape(v, shape)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index in ``shape`` of entry ``flat`` of ``vec`` (row-major)."""
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


# ---------------------------------------------------------------------------------------------------
# Tolerances
# ---------------------------------------------------------------------------------------------------

#: Default (rtol, atol) for hand versus autodiff, by the dtype of ``x``. Both sides are exact
#: derivatives evaluated in floating point, so they agree to a few ulps times the depth of the
#: computation: 1e-7 relative in float64 leaves five orders of magnitude of head-room over rounding
#: and still catches an entry off by 1e-5; float32 has ~1e-7 resolution, so 1e-4 relative.
#: ``atol`` is relative to the largest entry of the Jacobian (zeros compare on that scale).
TOLERANCES = {
    jnp.dtype("float64"): (1e-7, 1e-9),
    jnp.dtype("float32"): (1e-4, 1e-5),
    jnp.dtype("float16"): (1e-2, 1e-3),
    jnp.dtype("bfloat16"): (2e-2, 1e-2),
}

#: Finite differences are only accurate to about ``eps^(2/3)`` (truncation plus rounding of a central
#: difference with step ``eps^(1/3)``): ~4e-11 in float64 and ~2e-5 in float32. Autodiff versus FD is
#: compared with this (rtol, atol), again with ``atol`` relative to the largest entry.
FD_TOLERANCES = {
    jnp.dtype("float64"): (1e-6, 1e-6),
    jnp.dtype("float32"): (1e-2, 1e-2),
}


def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` used by :func:`check_jacobian` for inputs of ``dtype``."""
    return TOLERANCES.get(jnp.dtype(dtype), TOLERANCES[jnp.dtype("float32")])


# ---------------------------------------------------------------------------------------------------
# The checker
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


@dataclasses.dataclass
class JacobianCheck:
    """The result of :func:`check_jacobian`.

    Attributes:
      ok: True when the hand Jacobian (or, without one, autodiff) agrees with the references.
      max_abs_error, max_rel_error: largest ``|hand - ref|`` and ``|hand - ref| / max(|ref|, tiny)``
        over the entries that count (kink entries accepted as one-sided derivatives are excluded).
      worst: ``(row, col)`` of the worst entry of the 2-D Jacobian (rows = outputs, columns = inputs,
        each side flattened by :func:`vec`).
      jacobians: 2-D Jacobians by route: ``"hand"`` (if given), ``"jacfwd"``, ``"jacrev"``, ``"fd"``.
      kinks: entries where ``f`` is not differentiable at ``x``, with the one-sided derivatives.
      mismatches: ``(row, col)`` of every entry outside tolerance, worst first.
    """

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst: tuple[int, int]
    jacobians: dict[str, np.ndarray]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    rtol: float
    atol: float
    reference: str
    mismatches: list[tuple[int, int]]
    kinks: list[KinkEntry]
    notes: list[str]
    in_labels: Callable[[int], str] | None = None  # column -> input name (pytree inputs)
    in_desc: str | None = None  # how to describe the input in the report (pytree inputs)

    def entry_name(self, row: int, col: int) -> str:
        """``d f[i] / d x[j]`` written with indices in the original shapes (or pytree paths)."""
        i = _index(row, self.out_shape)
        fi = "f" if not self.out_shape else f"f{list(i)}"
        xj = self.in_labels(col) if self.in_labels else f"x{list(_index(col, self.in_shape))}"
        return f"d{fi}/d{xj}"

    def report(self, max_entries: int = 5) -> str:
        """A human-readable report: verdict, worst entry with both values, other mismatches, kinks."""
        J = self.jacobians
        ref = J[self.reference]
        cand_name = "hand" if "hand" in J else "jacfwd"
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
            + (f"  (fd {J['fd'][r, c]:+.6g})" if "fd" in J else "")
        )
        if len(self.mismatches) > 1:
            lines.append(f"  {len(self.mismatches)} entries outside tolerance; the first {max_entries}:")
            for rr, cc in self.mismatches[:max_entries]:
                lines.append(
                    f"    (row {rr}, col {cc}) {self.entry_name(rr, cc)}: "
                    f"{cand_name} {cand[rr, cc]:+.6g} vs {self.reference} {ref[rr, cc]:+.6g}"
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


def _flat_fn(f, in_shape):
    def g(v):
        return jnp.reshape(f(jnp.reshape(v, in_shape)), (-1,))

    return g


def _fd_step(v: np.ndarray, dtype) -> np.ndarray:
    """Per-entry step for central differences: ``eps^(1/3) * max(1, |x_j|)``."""
    eps = np.finfo(dtype).eps
    return eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(v))


def _one_sided(g, v: np.ndarray, h: np.ndarray, dtype):
    """Left, right and central differences of the flattened ``g`` at ``v``, each ``(n_out, n_in)``."""
    E = np.diag(h).astype(dtype)
    v = v.astype(dtype)
    gv = jax.vmap(g)
    f0 = np.asarray(g(jnp.asarray(v)), dtype=np.float64)
    fp = np.asarray(gv(jnp.asarray(v[None, :] + E)), dtype=np.float64)  # (n_in, n_out)
    fm = np.asarray(gv(jnp.asarray(v[None, :] - E)), dtype=np.float64)
    hh = h[:, None]
    right = ((fp - f0[None, :]) / hh).T
    left = ((f0[None, :] - fm) / hh).T
    central = ((fp - fm) / (2 * hh)).T
    return left, right, central


def _fd_dtype():
    return np.float64 if jax.config.jax_enable_x64 else np.float32


def finite_difference_jacobian(f: Callable, x) -> np.ndarray:
    """Central-difference 2-D Jacobian of ``f`` at ``x`` (float64 when x64 is on), step per entry."""
    x = jnp.asarray(x)
    dtype = _fd_dtype()
    v = np.asarray(vec(x), dtype=dtype)
    _, _, central = _one_sided(_flat_fn(f, x.shape), v, _fd_step(v, dtype), dtype)
    return central


def check_jacobian(
    f: Callable,
    x,
    jac: Callable | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> JacobianCheck:
    """Check a hand-written Jacobian of ``f`` at ``x`` against ``jacfwd``, ``jacrev`` and finite differences.

    Args:
      f: a JAX-traceable function of one array (vector or matrix) returning a scalar, vector or matrix.
      x: the point. A matrix ``x`` is differentiated with respect to ``vec[x]``.
      jac: ``jac(x)`` returning the 2-D Jacobian ``(f.size, x.size)``, the full ``f.shape + x.shape``
        tensor, or for scalar ``f`` the gradient in the shape of ``x``. Without ``jac``, autodiff
        itself is checked against finite differences.
      rtol, atol: tolerances for hand versus autodiff; default by the dtype of ``x``
        (:data:`TOLERANCES`). ``atol`` is scaled by the largest entry of the Jacobian.

    Returns:
      A :class:`JacobianCheck`. ``print(result)`` gives the report.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"check_jacobian needs a floating-point x, got dtype {x.dtype}")
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"check_jacobian: x contains NaN or inf: {x}")
    in_shape = tuple(x.shape)
    out = jax.eval_shape(f, x)
    out_shape = tuple(out.shape)
    n_out, n_in = int(np.prod(out_shape)), int(np.prod(in_shape))
    d_rtol, d_atol = default_tolerances(x.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    notes: list[str] = []

    J = {
        "jacfwd": np.asarray(jax.jacfwd(f)(x), dtype=np.float64).reshape(n_out, n_in),
        "jacrev": np.asarray(jax.jacrev(f)(x), dtype=np.float64).reshape(n_out, n_in),
    }
    fd_dtype = _fd_dtype()
    v = np.asarray(vec(x), dtype=fd_dtype)
    h = _fd_step(v, fd_dtype)
    g = _flat_fn(f, in_shape)
    left, right, J["fd"] = _one_sided(g, v, h, fd_dtype)
    if jac is not None:
        J = {"hand": _as_2d_jacobian(jac(x), in_shape, out_shape), **J}
    if not np.all(np.isfinite(J["jacfwd"])):
        notes.append("autodiff Jacobian has non-finite entries")

    ref = J["jacfwd"]
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    fd_rtol, fd_atol = FD_TOLERANCES.get(jnp.dtype(fd_dtype))

    # Entries where f is not smooth at x along input j: the one-sided differences disagree, at the
    # default step and at steps 100x and 10^4x smaller (a kink *near* x, not at it, stops
    # disagreeing once the step is below its distance).
    kink_mask = np.abs(left - right) > fd_atol * scale + fd_rtol * np.abs(right)
    if kink_mask.any():
        for shrink in (1e-2, 1e-4):
            l2, r2, _ = _one_sided(g, v, h * shrink, fd_dtype)
            kink_mask &= np.abs(l2 - r2) > fd_atol * scale + fd_rtol * np.abs(r2)

    # Autodiff must agree with itself (forward vs reverse) everywhere, and with FD where f is smooth.
    fwd_rev = np.abs(J["jacfwd"] - J["jacrev"])
    if np.any(fwd_rev > atol * scale + rtol * np.abs(ref)):
        notes.append(f"jacfwd and jacrev disagree by up to {fwd_rev.max():.3e}")
    ad_fd = np.where(kink_mask, 0.0, np.abs(ref - J["fd"]))
    ad_fd_bad = ad_fd > fd_atol * scale + fd_rtol * np.abs(ref)
    if ad_fd_bad.any():
        r, c = np.unravel_index(np.argmax(ad_fd), ad_fd.shape)
        notes.append(
            f"autodiff disagrees with finite differences at {int(ad_fd_bad.sum())} smooth entries, worst "
            f"(row {r}, col {c}): autodiff {ref[r, c]:+.6g} vs fd {J['fd'][r, c]:+.6g} "
            "(a wrong custom derivative rule, or f is not smooth at the scale of the FD step)"
        )

    cand_name = "hand" if jac is not None else "jacfwd"
    ref_name = "jacfwd" if jac is not None else "fd"
    cand, refv = J[cand_name], J[ref_name]
    tol = atol * scale + rtol * np.abs(refv) if jac is not None else fd_atol * scale + fd_rtol * np.abs(refv)
    abs_err = np.abs(cand - refv)
    bad = ~(abs_err <= tol)  # NaN counts as bad

    kinks: list[KinkEntry] = []
    big = 1.0 / np.sqrt(h)[None, :] * np.ones_like(left)  # one-sided differences across a jump ~ 1/h
    for r, c in zip(*np.nonzero(kink_mask)):
        lo, hi = left[r, c], right[r, c]
        hv = float(cand[r, c])
        ktol = fd_atol * scale + fd_rtol * max(abs(lo), abs(hi))
        jump_l, jump_r = abs(lo) > big[r, c], abs(hi) > big[r, c]
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
        kinks.append(KinkEntry(int(r), int(c), float(lo), float(hi), hv if jac is not None else None,
                               bool(accepted), why))
        # A kink entry is judged by its one-sided derivatives, not by the reference value.
        bad[r, c] = not accepted
        abs_err[r, c] = 0.0 if accepted else abs_err[r, c]
    if kinks:
        notes.append(f"{len(kinks)} entries at a kink were judged against one-sided derivatives")

    rel_err = abs_err / np.maximum(np.abs(refv), np.finfo(np.float64).tiny)
    rel_err = np.where(np.abs(refv) > 0, rel_err, np.where(abs_err > 0, np.inf, 0.0))
    score = np.where(np.isnan(abs_err), np.inf, abs_err / np.maximum(tol, np.finfo(np.float64).tiny))
    if score.size:
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(score), score.shape))
    else:
        worst = (0, 0)
    order = np.argsort(-score, axis=None)
    mismatches = [tuple(int(i) for i in np.unravel_index(k, score.shape)) for k in order
                  if bad.flat[k]]
    if jac is not None and bad.any():
        _diagnose(J["hand"], ref, atol * scale + rtol * np.abs(ref), notes)
    ok = (not bad.any()) and not any(n.startswith(("jacfwd and jacrev", "autodiff Jacobian has"))
                                     for n in notes)
    if jac is None:
        ok = ok and not ad_fd_bad.any()
    return JacobianCheck(
        ok=bool(ok),
        max_abs_error=float(np.nanmax(np.where(np.isnan(abs_err), np.inf, abs_err))) if abs_err.size else 0.0,
        max_rel_error=float(np.max(np.where(np.isnan(rel_err), np.inf, rel_err))) if rel_err.size else 0.0,
        worst=worst,
        jacobians=J,
        in_shape=in_shape,
        out_shape=out_shape,
        rtol=rtol,
        atol=atol,
        reference=ref_name,
        mismatches=mismatches,
        kinks=kinks,
        notes=notes,
    )


def _diagnose(hand: np.ndarray, ref: np.ndarray, tol: np.ndarray, notes: list[str]) -> None:
    """Name common mistakes: a transposed Jacobian, a sign flip, a constant factor."""
    if (ref.shape[0] == ref.shape[1] and not np.allclose(ref, ref.T)
            and np.allclose(hand, ref.T, rtol=1e-6, atol=1e-9)):
        notes.append("hand equals the TRANSPOSE of the Jacobian: rows must be outputs, columns inputs")
        return
    if np.allclose(hand, -ref, rtol=1e-6, atol=1e-9):
        notes.append("hand equals MINUS the Jacobian: a sign error")
        return
    nz = np.abs(ref) > 1e-12
    if nz.any():
        ratio = hand[nz] / ref[nz]
        if np.allclose(ratio, ratio[0], rtol=1e-6) and np.allclose(hand[~nz], 0) and ratio[0] != 1:
            notes.append(f"hand equals {ratio[0]:.6g} times the Jacobian: a constant factor is off")
            return
    flipped = (np.abs(hand + ref) <= tol) & (np.abs(hand - ref) > tol)
    if flipped.any():
        r, c = np.argwhere(flipped)[0]
        notes.append(f"{int(flipped.sum())} entries have the opposite sign, e.g. (row {r}, col {c})")


def assert_jacobian(f: Callable, x, jac: Callable, **kw) -> JacobianCheck:
    """Like :func:`check_jacobian`, but raise ``AssertionError`` with the report when the check fails."""
    result = check_jacobian(f, x, jac, **kw)
    if not result.ok:
        raise AssertionError(result.report())
    return result


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

    def grad_flat(v):
        g = grad(unravel(v))
        got = (jax.tree.structure(g), [jnp.shape(a) for a in jax.tree.leaves(g)])
        want = (jax.tree.structure(params), [jnp.shape(a) for a in jax.tree.leaves(params)])
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


# ---------------------------------------------------------------------------------------------------
# The chain rule: products of Jacobians in the cheapest order
# ---------------------------------------------------------------------------------------------------


def _dims(shapes: Sequence[tuple[int, int]]) -> list[int]:
    if len(shapes) == 0:
        raise ValueError("chain needs at least one Jacobian")
    dims = [int(shapes[0][0])]
    for k, (r, c) in enumerate(shapes):
        if int(r) != dims[-1]:
            raise ValueError(
                f"chain: Jacobian {k} has {r} rows but Jacobian {k - 1} has {dims[-1]} columns; give the "
                "Jacobians outermost first (df/dg, dg/dh, dh/dx), each 2-D with rows = outputs"
            )
        dims.append(int(c))
    return dims


@functools.lru_cache(maxsize=256)
def _matrix_chain(dims: tuple[int, ...]) -> tuple[int, tuple]:
    """Optimal cost and split table of the matrix-chain product for ``dims`` (classic DP)."""
    k = len(dims) - 1
    cost = [[0] * k for _ in range(k)]
    split = [[0] * k for _ in range(k)]
    for length in range(2, k + 1):
        for i in range(k - length + 1):
            j = i + length - 1
            best, arg = None, None
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if best is None or c < best:
                    best, arg = c, s
            cost[i][j], split[i][j] = best, arg
    return cost[0][k - 1], tuple(tuple(r) for r in split)


def _paren(split, i, j) -> str:
    if i == j:
        return f"J{i + 1}"
    s = split[i][j]
    return f"({_paren(split, i, s)} {_paren(split, s + 1, j)})"


def chain_cost(shapes: Sequence[tuple[int, int]]) -> dict:
    """Multiply-add counts of a chain of Jacobians given outermost first.

    Returns a dict with ``reverse`` (left to right, ``((J1 J2) J3) ...``: what reverse mode does),
    ``forward`` (right to left, ``J1 (J2 (J3 ...))``: forward mode), ``optimal`` (matrix-chain
    dynamic programming) and ``order`` (the optimal parenthesization, ``J1`` outermost).
    """
    dims = _dims(shapes)
    k = len(dims) - 1
    reverse = sum(dims[0] * dims[i] * dims[i + 1] for i in range(1, k))
    forward = sum(dims[i - 1] * dims[i] * dims[k] for i in range(1, k))
    optimal, split = _matrix_chain(tuple(dims))
    return {"reverse": reverse, "forward": forward, "optimal": optimal, "order": _paren(split, 0, k - 1)}


def chain(*jacobians) -> jax.Array:
    """The Jacobian of a composition from the Jacobians of its parts, given outermost first.

    ``chain(df_dg, dg_dh, dh_dx)`` is ``df_dg @ dg_dh @ dh_dx`` (the slide's chain rule), multiplied in
    the cheapest order. The order matters for cost only: the chain rule in the *reverse* order of
    factors (``dh_dx @ dg_dh @ df_dg``) is wrong, and usually not even defined.
    """
    Js = [jnp.asarray(J) for J in jacobians]
    for k, J in enumerate(Js):
        if J.ndim != 2:
            raise ValueError(f"chain: Jacobian {k} must be 2-D (rows = outputs), got shape {J.shape}")
    dims = _dims([J.shape for J in Js])
    _, split = _matrix_chain(tuple(dims))

    def mult(i, j):
        if i == j:
            return Js[i]
        s = split[i][j]
        return mult(i, s) @ mult(s + 1, j)

    return mult(0, len(Js) - 1)


def jacobian(f: Callable, x, mode: str = "auto") -> jax.Array:
    """The 2-D Jacobian ``d vec[f] / d vec[x]`` of ``f`` at ``x``.

    ``mode="auto"`` picks reverse mode for wide Jacobians (fewer outputs than inputs: one backward pass
    per output) and forward mode otherwise (one forward pass per input); ``"fwd"`` and ``"rev"`` force
    one. Works under ``jax.jit`` (the choice is made from static shapes).
    """
    x = jnp.asarray(x)
    n_out = int(np.prod(jax.eval_shape(f, x).shape))
    n_in = int(x.size)
    if mode == "auto":
        mode = "rev" if n_out < n_in else "fwd"
    if mode not in ("fwd", "rev"):
        raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
    jac_fn = jax.jacrev if mode == "rev" else jax.jacfwd
    return jnp.reshape(jac_fn(f)(x), (n_out, n_in))
