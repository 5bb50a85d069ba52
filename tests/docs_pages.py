"""The pages a reader sees (README.md and docs/*.md), split into prose and fenced blocks, and a runner for
their Python blocks.

A page's ```` ```python ```` blocks run in order in one fresh interpreter, in one namespace (a page reads
like a notebook: a later block uses what an earlier one defined), from the repository root. Two directives,
HTML comments on the line just before a fence (GitHub does not show them), say more:

* ``<!-- output -->`` before a fenced block: the block is the output of the Python block above it. It is
  compared with what that block printed, then, if the block raised, the exception as Python prints it
  (``AssertionError: message``). A line ``...`` stands for any number of lines, and ``...`` inside a line
  for any text; trailing spaces are ignored.
* ``<!-- run with: "A" -> "B" -->`` before a Python block: the test runs the block with the text A
  replaced by B (A must occur in it), for a block that at the size shown would take more than a few
  seconds. The output shown under such a block is the output at the size shown, so it is not compared.

Run as a script, ``python tests/docs_pages.py PAGE OUT.json`` runs PAGE's Python blocks and writes, for
each, what it printed and the exception it raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import json
import os
import re
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Every page whose numbers and code blocks are checked.
PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]

OUTPUT = "<!-- output -->"
RUN_WITH = re.compile(r'<!-- run with: "(?P<old>(?:[^"\\]|\\.)+)" -> "(?P<new>(?:[^"\\]|\\.)*)" -->')
_DIRECTIVE = re.compile(r"<!-- (output|run with:)")


@dataclasses.dataclass
class Block:
    """One fenced block: its info string (``python``, ``bash``, ...), text, first line (1-based) and directive."""

    info: str
    text: str
    line: int
    directive: str = ""

    @property
    def is_python(self) -> bool:
        return self.info == "python"

    @property
    def is_output(self) -> bool:
        return self.directive == OUTPUT


def read(page: str) -> str:
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return f.read()


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the directive on the line before each, if any.

    A directive anywhere else, an unclosed fence or an output block that follows no Python block is an error.
    """
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            start, info = i, line[3:].strip()
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            if i == len(lines):
                raise ValueError(f"line {start + 1}: a fenced block that is never closed")
            previous = lines[start - 1].strip() if start else ""
            directive = previous if _DIRECTIVE.match(previous) else ""
            found.append(Block(info, "\n".join(lines[start + 1:i]), start + 2, directive))
        elif _DIRECTIVE.match(line.strip()) and not (i + 1 < len(lines) and lines[i + 1].startswith("```")):
            raise ValueError(f"line {i + 1}: {line.strip()!r} must stand on the line just before a fence")
        i += 1
    for k, b in enumerate(found):
        if b.directive and b.directive != OUTPUT and not RUN_WITH.fullmatch(b.directive):
            raise ValueError(f"line {b.line - 1}: unknown directive {b.directive!r} (expected {OUTPUT!r} or "
                             "'<!-- run with: \"A\" -> \"B\" -->')")
        if b.is_output and (k == 0 or not found[k - 1].is_python):
            raise ValueError(f"line {b.line - 1}: an output block must come just after a Python block")
        if RUN_WITH.fullmatch(b.directive) and not b.is_python:
            raise ValueError(f"line {b.line - 1}: 'run with' applies to a Python block, not {b.info or 'a plain'} one")
    return found


def runnable(block: Block) -> str:
    """The code the test runs for a Python block: its text, with a ``run with`` substitution made."""
    m = RUN_WITH.fullmatch(block.directive)
    if not m:
        return block.text
    old, new = (json.loads(f'"{s}"') for s in (m.group("old"), m.group("new")))
    if old not in block.text:
        raise ValueError(f"line {block.line - 1}: 'run with' replaces {old!r}, which is not in the block")
    return block.text.replace(old, new)


def expected_outputs(page_blocks: list[Block]) -> dict[int, Block | None]:
    """For the i-th Python block: the output block shown under it (None if none), unless a substitution
    makes it run at another size (then it has no entry: its output is not compared)."""
    python = [b for b in page_blocks if b.is_python]
    out: dict[int, Block | None] = {}
    for i, b in enumerate(python):
        k = page_blocks.index(b)
        shown = page_blocks[k + 1] if k + 1 < len(page_blocks) and page_blocks[k + 1].is_output else None
        if not RUN_WITH.fullmatch(b.directive):
            out[i] = shown
    return out


def matches(expected: str, actual: str) -> bool:
    """``actual`` agrees with ``expected``, where a line ``...`` is any lines and ``...`` in a line any text."""
    pattern = []
    for line in expected.strip("\n").split("\n"):
        line = line.rstrip()
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append("[^\n]*?".join(re.escape(part) for part in line.split("...")) + r"\n")
    actual = "\n".join(line.rstrip() for line in actual.strip("\n").split("\n")) + "\n"
    return re.fullmatch("".join(pattern), actual) is not None


def run_page(page: str) -> list[dict]:
    """Run a page's Python blocks in order in one namespace; per block, its stdout and its exception."""
    os.chdir(ROOT)
    namespace = {"__name__": "__main__"}
    results = []
    for b in (b for b in blocks(read(page)) if b.is_python):
        out, error = io.StringIO(), None
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(runnable(b), f"{page}:{b.line}", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 -- shown to the test, which decides
                error = "".join(traceback.format_exception_only(type(exc), exc))
                trace = "".join(traceback.format_exception(exc))
        results.append({"line": b.line, "stdout": out.getvalue(), "error": error,
                        "traceback": trace if error else None})
    return results


if __name__ == "__main__":
    page_arg, out_arg = sys.argv[1:]
    with open(out_arg, "w", encoding="utf-8") as f:
        json.dump(run_page(page_arg), f)
