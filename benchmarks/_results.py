"""One benchmark run's section of ``benchmarks/RESULTS.md``: what it printed, the command that printed it,
the machine and its load, and the figures the README may quote.

A script wraps its run in :class:`Section`; run with ``--record`` (:func:`add_record_flag`), it writes
``benchmarks/results/<name>.md`` atomically and reassembles ``RESULTS.md`` (``benchmarks/collect.py``).
Without ``--record`` it only prints, so small or partial runs (``make device-check``, a quick look) never
replace a recorded measurement. The format of a section file is described in ``collect.py``.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import io
import os
import platform
import re
import shlex
import sys
import time

import collect

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def add_record_flag(parser) -> None:
    parser.add_argument("--record", action="store_true",
                        help="write this run's section of benchmarks/RESULTS.md (benchmarks/results/NAME.md) and "
                             "reassemble RESULTS.md")


def sci(x: float, digits: int = 2) -> str:
    """``5.2·10⁷``: ``x`` to ``digits`` significant digits, as the README writes rates."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}·10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def times(x: float, digits: int = 2) -> str:
    """A ratio to ``digits`` significant digits (at least one decimal below 10): ``6.5×``, ``59×``."""
    return f"{x:.{max(digits - 1, 0)}f}×" if x < 10 else f"{x:.0f}×"


def span(values, fmt) -> str:
    """``lo–hi`` of the formatted smallest and largest value (one value if they print the same)."""
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo.rstrip('×')}–{hi}"


def machine() -> str:
    """CPU model, cores, architecture, backend and the versions that matter, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for package, label in (("jax", "jax"), ("jaxlib", "jaxlib"), ("numpy", "NumPy"), ("scikit-learn", "scikit-learn")):
        try:
            versions.append(f"{label} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    jax = sys.modules.get("jax")
    backend = f"{jax.default_backend()} backend" if jax is not None else "no jax in the driver"
    return (f"{cpu}, {os.cpu_count()} cores ({platform.machine()}), {backend}; Python {platform.python_version()}, "
            + ", ".join(versions))


def command(argv=None) -> str:
    argv = sys.argv if argv is None else argv
    return " ".join(["python", f"benchmarks/{os.path.basename(argv[0])}", *map(shlex.quote, argv[1:])])


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for stream in self.streams:
            stream.write(s)
        return len(s)

    def flush(self):
        for stream in self.streams:
            stream.flush()


class Section:
    """``with Section(name, title, record=args.record) as sec:`` -- everything printed inside is the output.

    Inside, the script sets ``sec.intro`` (what is timed and how, in words), adds ``sec.note(text)``
    paragraphs computed from its measurements, ``sec.figure(key, value, what)`` for every figure the README
    may quote (``value`` exactly as quoted, e.g. ``"2.36×"``), and ``sec.summary(benchmark, target, result)``
    rows for the table at the top of RESULTS.md.
    """

    def __init__(self, name: str, title: str, *, record: bool):
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"section name must be lower-case letters, digits and _, got {name!r}")
        self.name, self.title, self.record = name, title, record
        self.intro = ""
        self.notes: list[str] = []
        self.figures: list[tuple[str, str, str]] = []
        self.rows: list[list[str]] = []
        self._out = io.StringIO()

    def note(self, text: str) -> None:
        self.notes.append(text.strip())

    def figure(self, key: str, value: str, what: str) -> str:
        key = f"{self.name}.{key}"
        collect.check_figure(key, value, what)
        if any(k == key for k, _, _ in self.figures):
            raise ValueError(f"figure {key!r} given twice")
        self.figures.append((key, value, what))
        return value

    def summary(self, benchmark: str, target: str, result: str) -> None:
        self.rows.append([benchmark, target, result])

    def __enter__(self):
        self.started = datetime.datetime.now(datetime.UTC)
        self.load_before = os.getloadavg()
        self._t0 = time.perf_counter()
        self._stdout = sys.stdout
        sys.stdout = _Tee(self._stdout, self._out)
        print(f"$ {command()}")
        return self

    def __exit__(self, exc_type, exc, tb):
        sys.stdout = self._stdout
        if exc_type is None and self.record:
            self.write()
        return False

    def write(self) -> str:
        meta = {
            "name": self.name, "title": self.title, "command": command(),
            "date": self.started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "load_before": _load(self.load_before), "load_after": _load(os.getloadavg()),
            "seconds": round(time.perf_counter() - self._t0), "summary": self.rows,
        }
        text = collect.render_section(meta, self.intro, self._out.getvalue(), self.notes, self.figures)
        path = collect.write_atomically(os.path.join(collect.SECTIONS, f"{self.name}.md"), text)
        print(f"wrote {os.path.relpath(path, collect.ROOT)}; {collect.write_results()}", file=self._stdout)
        return path


def _load(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)
