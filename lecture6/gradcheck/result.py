"""What a check returns: :class:`JacobianCheck`, its report, and the entry-by-entry comparisons behind it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from lecture6.gradcheck.settings import index


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


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``cand`` against ``ref`` entry by entry: errors, tolerances and the entries outside them."""

    abs_err: np.ndarray
    tol: np.ndarray
    bad: np.ndarray  # NaN counts as bad

    def worst(self) -> tuple[int, int]:
        """The entry furthest outside its tolerance (relative to it), NaN first."""
        score = self.score()
        return tuple(int(i) for i in np.unravel_index(np.argmax(score), score.shape))

    def worst_first(self) -> list[tuple[int, int]]:
        """The entries outside tolerance, furthest (relative to the tolerance) first."""
        rows, cols = np.nonzero(self.bad)
        order = np.argsort(-self.score()[rows, cols], kind="stable")
        return [(int(rows[k]), int(cols[k])) for k in order]

    def score(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            s = self.abs_err / np.maximum(self.tol, np.finfo(np.float64).tiny)
        return np.where(np.isnan(s), np.inf, s)


def compare(cand: np.ndarray, ref: np.ndarray, tol: np.ndarray, skip: np.ndarray | None = None) -> Comparison:
    abs_err = np.abs(cand - ref)
    bad = ~(abs_err <= tol)
    if skip is not None:
        bad &= ~skip
    return Comparison(abs_err, tol, bad)


def judged_with_kinks(primary: Comparison, kinks: list[KinkEntry]) -> Comparison:
    """``primary`` with every kink entry judged by its one-sided derivatives instead of the reference."""
    abs_err, bad = primary.abs_err.copy(), primary.bad.copy()
    for k in kinks:
        bad[k.row, k.col] = not k.accepted
        if k.accepted:
            abs_err[k.row, k.col] = 0.0
    return Comparison(abs_err, primary.tol, bad)


def max_errors(comp: Comparison, ref: np.ndarray) -> tuple[float, float]:
    """Largest ``|cand - ref|`` and ``|cand - ref| / |ref|`` of a comparison (NaN counts as inf)."""
    if not comp.abs_err.size:
        return 0.0, 0.0
    abs_err = np.where(np.isnan(comp.abs_err), np.inf, comp.abs_err)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(np.abs(ref) > 0, abs_err / np.abs(ref), np.where(abs_err > 0, np.inf, 0.0))
    return float(abs_err.max()), float(np.where(np.isnan(rel), np.inf, rel).max())


def failing_entries(judged: Comparison, *others: list[tuple[int, int]]) -> tuple[tuple[int, int], list]:
    """``(worst, mismatches)``: the candidate's failing entries against its reference, worst first; where
    there are none, the first non-empty list of ``others`` (autodiff against FD, jacfwd against jacrev);
    where nothing fails, the candidate's entry closest to its tolerance and no mismatch."""
    for entries in (judged.worst_first(), *others):
        if entries:
            return entries[0], list(entries)
    return judged.worst(), []


def diagnose(hand: np.ndarray, ref: np.ndarray, tol: np.ndarray) -> list[str]:
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


def _value(J: dict, route: str, r: int, c: int, fmt: str) -> str:
    """``J[route][r, c]`` formatted, or a word for a route the check did not evaluate there."""
    v = J[route][r, c] if route in J else np.nan
    return "not evaluated" if np.isnan(v) and route in ("fd", "jacfwd", "jacrev") else format(v, fmt)


@dataclasses.dataclass
class JacobianCheck:
    """The result of :func:`check_jacobian`. ``ok`` is the conjunction of the five verdict fields.

    Attributes:
      autodiff_finite: ``jacfwd`` and ``jacrev`` have no NaN or inf.
      autodiff_modes_agree: ``jacfwd`` and ``jacrev`` agree everywhere (hand tolerances by dtype).
      autodiff_matches_fd: at every smooth entry, autodiff agrees with a central difference.
      hand_matches_autodiff: the hand Jacobian agrees with autodiff at every smooth entry; ``None``
        when no hand Jacobian was given.
      kinks_explain: at every kink the candidate is a one-sided derivative or between the two.
      max_abs_error, max_rel_error: largest ``|cand - ref|`` and ``|cand - ref| / |ref|`` over the
        entries that count (kink entries accepted as one-sided derivatives are excluded); ``cand`` is the
        hand Jacobian and ``ref`` autodiff, or without a hand Jacobian ``cand`` is autodiff and ``ref`` FD.
      worst: ``(row, col)`` of the worst entry of the 2-D Jacobian (rows = outputs, columns = inputs,
        each side flattened by ``vec``): the candidate's worst against its reference, or where that
        comparison passes and autodiff fails, autodiff's worst against finite differences (or jacfwd's
        against jacrev).
      mismatches: ``(row, col)`` of every entry that fails, worst first, from the same comparison as ``worst``.
      mode_mismatches, fd_mismatches: the entries where jacfwd and jacrev disagree, and the smooth
        entries where autodiff and finite differences disagree, worst first.
      jacobians: 2-D Jacobians by route: ``"hand"`` (if given), ``"jacfwd"``, ``"jacrev"``, ``"fd"``
        (central differences, at the step that agrees with autodiff where one does).
      autodiff: the route that stands for autodiff: ``"jacfwd"``, or ``"jacrev"`` for a function with a
        ``jax.custom_vjp`` rule (forward mode cannot differentiate it; there is no ``"jacfwd"`` then) and
        in the fast mode for a function with fewer outputs than inputs.
      reference: what the candidate was compared with: ``autodiff`` with a hand Jacobian, else ``"fd"``.
      kinks: entries where ``f`` is not differentiable at ``x``, with the one-sided derivatives.
      notes: diagnoses (a transpose, a sign flip, a constant factor) and remarks; never the verdict.
      mode: ``"full"`` or ``"fast"``. In the fast mode (:mod:`lecture6.gradcheck.fast`) the hand and
        autodiff Jacobians are whole, but finite differences, the other autodiff mode and kinks are known
        only in the columns the check examined: ``jacobians["fd"]`` (and ``"jacfwd"`` beside
        ``"jacrev"``) are NaN elsewhere, and ``fd_mismatches``, ``mode_mismatches`` and ``kinks`` list
        what was found there. ``ok``, ``worst``, ``mismatches`` and the report mean the same in both modes.
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
    mode: str = "full"

    @property
    def ok(self) -> bool:
        """The verdict: every comparison passed (``hand_matches_autodiff`` may be ``None``: no hand)."""
        return (self.autodiff_finite and self.autodiff_modes_agree and self.autodiff_matches_fd
                and self.kinks_explain and self.hand_matches_autodiff is not False)

    def entry_name(self, row: int, col: int) -> str:
        """``d f[i] / d x[j]`` written with indices in the original shapes (or pytree paths)."""
        i = index(row, self.out_shape)
        fi = "f" if not self.out_shape else f"f{list(i)}"
        xj = self.in_labels(col) if self.in_labels else f"x{list(index(col, self.in_shape))}"
        return f"d{fi}/d{xj}"

    def report(self, max_entries: int = 5) -> str:
        """A human-readable report: verdict, worst entry with both values, other failures, kinks."""
        J = self.jacobians
        cand_name = "hand" if "hand" in J else self.autodiff
        cand = J[cand_name]
        shape2d = cand.shape
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
            f"{cand_name} {cand[r, c]:+.10g}  vs  {self.reference} {_value(J, self.reference, r, c, '+.10g')}"
            + (f"  (fd {_value(J, 'fd', r, c, '+.6g')})" if self.reference != "fd" else "")
        )
        if len(self.mismatches) > 1:
            lines.append(f"  {len(self.mismatches)} entries outside tolerance; the first {max_entries}:")
            for rr, cc in self.mismatches[:max_entries]:
                lines.append(
                    f"    (row {rr}, col {cc}) {self.entry_name(rr, cc)}: "
                    f"{cand_name} {cand[rr, cc]:+.6g} vs {self.reference} {_value(J, self.reference, rr, cc, '+.6g')}"
                )
        if not self.autodiff_finite:
            lines.append("  autodiff Jacobian has non-finite entries (NaN or inf): f is not differentiable "
                         "at x, or its derivative overflows")
        if not self.autodiff_modes_agree and self.mode_mismatches:
            rr, cc = self.mode_mismatches[0]
            lines.append(
                f"  jacfwd and jacrev DISAGREE at {len(self.mode_mismatches)} entries, worst (row {rr}, col {cc}) "
                f"{self.entry_name(rr, cc)}: jacfwd {_value(J, 'jacfwd', rr, cc, '+.10g')} vs jacrev "
                f"{_value(J, 'jacrev', rr, cc, '+.10g')}; a custom derivative rule (jax.custom_jvp / "
                "jax.custom_vjp) is inconsistent: not linear in the tangent, or its forward and reverse rules differ"
            )
        if not self.autodiff_matches_fd and self.reference != "fd" and self.fd_mismatches:
            rr, cc = self.fd_mismatches[0]
            lines.append(
                f"  autodiff DISAGREES with finite differences at {len(self.fd_mismatches)} smooth entries "
                f"(rtol {self.fd_rtol:g}, atol {self.fd_atol:g}), worst (row {rr}, col {cc}) "
                f"{self.entry_name(rr, cc)}: {self.autodiff} {J[self.autodiff][rr, cc]:+.10g} vs fd "
                f"{_value(J, 'fd', rr, cc, '+.10g')}; "
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
