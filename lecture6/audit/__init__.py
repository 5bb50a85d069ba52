"""The lecture audit: one executable check per claim of the slides.

Each module in this package registers claims with :func:`claim`; ``python -m lecture6.audit`` imports
them all, runs every check, prints one row per claim (section, claim, how it was checked, max error,
PASS/FAIL) and exits non-zero if any row fails. A check that raises is a FAIL row with the error,
never a crash of the whole audit.

Every row checks lecture6 code against a route that does not go through the code under test:
autodiff, finite differences, a dense or brute-force reference written in the row, SciPy or
scikit-learn. ``tests/test_audit_breaks.py`` breaks the library under each row on purpose and
sees that row FAIL.

``make audit`` (``python -m lecture6.audit``) runs every row at full size. ``--quick``
(``run(quick=True)``, what the tests use) runs the same checks on smaller problems: fewer points,
seeds and samples; a row reads its sizes with :func:`sized`.

To add rows, add a module here with ``ORDER = <int>`` (its place in the lecture) and functions
decorated with ``@claim(section, text, method)`` that return a :class:`Check`. A row's id is
``<module>.<function name without the leading underscore>``, e.g. ``jacobians.f_example``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Callable

import jax


# Three plain records with some fields in common, kept apart on purpose: what a check returns (Check),
# what a module registers (Claim) and what the audit prints (Row).
@dataclasses.dataclass(frozen=True)
class Check:
    """What a claim's check found: the largest error seen, whether it passed, and a short note."""

    max_error: float | None
    passed: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    section: str
    text: str
    method: str
    run: Callable[[], Check]
    order: tuple[int, int]
    id: str = ""


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    section: str
    claim: str
    method: str
    max_error: float | None
    passed: bool
    note: str
    seconds: float


_REGISTRY: list[Claim] = []
_QUICK = contextvars.ContextVar("lecture6_audit_quick", default=False)


def sized(full, quick):
    """``full`` when the audit runs at full size (``make audit``), ``quick`` in quick mode (the tests)."""
    return quick if _QUICK.get() else full


def is_quick() -> bool:
    """Whether the claim being run is checked in quick mode."""
    return _QUICK.get()


def claim_id(fn: Callable) -> str:
    """``<module>.<name>`` of a check function, without the leading underscore of its name."""
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__.lstrip('_')}"


def claim(section: str, text: str, method: str):
    """Register the decorated zero-argument function as the check of one claim of the slides."""

    def register(fn: Callable[[], Check]) -> Callable[[], Check]:
        module = sys.modules[fn.__module__]
        cid = claim_id(fn)
        if any(c.id == cid for c in _REGISTRY):
            raise ValueError(f"audit claim id {cid!r} is registered twice")
        order = (getattr(module, "ORDER", 1000), len(_REGISTRY))
        _REGISTRY.append(Claim(section, text, method, fn, order, cid))
        return fn

    return register


def _load_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def claims() -> list[Claim]:
    """Every registered claim, in lecture order, rows of one slide title together."""
    _load_all()
    ordered = sorted(_REGISTRY, key=lambda c: c.order)
    first = {}
    for i, c in enumerate(ordered):
        first.setdefault(c.section, i)
    return sorted(ordered, key=lambda c: (first[c.section], c.order))


def run_claim(c: Claim, *, quick: bool = False) -> Row:
    """Run one claim's check (at full size, or on the smaller problems of quick mode) as a :class:`Row`."""
    start = time.perf_counter()
    token = _QUICK.set(bool(quick))
    try:
        result = c.run()
    except Exception as exc:  # a broken check is a FAIL row, not a crash of the audit
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result = Check(None, False, f"check raised {tb}")
    finally:
        _QUICK.reset(token)
    return Row(c.id, c.section, c.text, c.method, result.max_error, bool(result.passed), result.note,
               time.perf_counter() - start)


def _matches(c: Claim, select: str | None) -> bool:
    return select is None or select.lower() in f"{c.id} {c.section} {c.text}".lower()


def run(select: str | None = None, *, quick: bool = False) -> list[Row]:
    """Run every claim (or those whose id, section or text contains ``select``) and return the rows.

    ``quick=True`` runs the same checks on smaller problems (what the tests do); the default is the
    full audit of ``make audit``.
    """
    return [run_claim(c, quick=quick) for c in claims() if _matches(c, select)]


def _fmt_err(e: float | None) -> str:
    return "-" if e is None else f"{e:.1e}"


def format_rows(rows: list[Row], quick: bool = False) -> str:
    """A plain-text table, one claim per row; notes on an indented line below their row."""
    lines = ["(quick mode: the same checks on smaller problems)"] if quick else []
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            lines.append("")
            lines.append(f"== {section} ==")
        status = "PASS" if r.passed else "FAIL"
        lines.append(f"  {status}  {_fmt_err(r.max_error):>8}  {r.claim}  [{r.id}]")
        lines.append(f"{'':16}checked: {r.method}")
        if r.note:
            lines.append(f"{'':16}note: {r.note}")
    n_fail = sum(not r.passed for r in rows)
    lines.append("")
    lines.append(f"{len(rows) - n_fail} passed, {n_fail} failed"
                 f"  ({len(rows)} claims, max error is the largest deviation seen)")
    return "\n".join(lines)


def write_rows(rows: list[Row], path: str) -> None:
    """``rows`` as a JSON list of objects (the fields of :class:`Row`), written whole (temporary file, rename)."""
    import json

    from lecture6.rundir import write_atomically

    write_atomically(path, json.dumps([dataclasses.asdict(r) for r in rows], indent=1) + "\n")


def read_rows(path: str) -> list[Row]:
    """The rows :func:`write_rows` wrote."""
    import json

    with open(path) as f:
        return [Row(**r) for r in json.load(f)]


def format_markdown(rows: list[Row]) -> str:
    """The audit as a Markdown table (for the README)."""
    out = ["| section | claim | checked by | max error | result |", "|---|---|---|---|---|"]
    for r in rows:
        claim_text = r.claim + (f" *({r.note})*" if r.note else "")
        out.append(f"| {r.section} | {claim_text} | {r.method} | {_fmt_err(r.max_error)} | "
                   f"{'PASS' if r.passed else 'FAIL'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lecture6.audit", description=__doc__.split("\n")[0])
    parser.add_argument("-k", "--select", help="only claims whose id, section or text contains this")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead")
    parser.add_argument("--quick", action="store_true",
                        help="the same checks on smaller problems (seconds, not minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE as a JSON list")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    rows = run(args.select, quick=args.quick)
    if not rows:
        print(f"no claim matches {args.select!r}", file=sys.stderr)
        return 2
    print(format_markdown(rows) if args.markdown else format_rows(rows, quick=args.quick))
    if args.json:
        write_rows(rows, args.json)
    return 0 if all(r.passed for r in rows) else 1
