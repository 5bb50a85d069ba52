"""Assemble ``benchmarks/RESULTS.md`` from the sections the benchmark scripts write.

    python benchmarks/collect.py           # rewrite RESULTS.md from benchmarks/results/*.md
    python benchmarks/collect.py --check   # exit 1 if RESULTS.md is not what the sections assemble to

Every benchmark script run with ``--record`` writes its own section, ``benchmarks/results/<name>.md``
(``_results.Section``), and then calls this. RESULTS.md is nothing but a header made from the sections'
own records (machine, date, load, seconds, summary rows) and the sections in :data:`ORDER`; it is never
edited by hand (``tests/test_readme_figures.py`` checks that it is exactly what this file assembles).

A section file, if one is ever written by other means, must look like this:

    <!-- section: {"name": "ppca", "title": "...", "command": "python benchmarks/bench_ppca.py -\\u002drecord",
                   "date": "2026-12-01 10:22 UTC", "machine": "...", "load_before": "1.20 1.31 1.90",
                   "load_after": "...", "seconds": 95, "summary": [["benchmark", "target", "result"]]} -->
    ## Title (`benchmarks/bench_ppca.py`)
    ...free Markdown: what is timed, the output, notes computed from the measurement...
    - `ppca.total_ratio` = 2.36×: what it is <!-- figure: ppca.total_ratio = 2.36× -->

The first line is JSON in an HTML comment ("--" inside it written as ``-\\u002d``); ``seconds`` may be
null. Figure keys start with the section's name and a dot. Only stdlib and ``lecture6.rundir`` (no JAX)
here: the test imports this file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

from lecture6.rundir import write_atomically  # stdlib only, no JAX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = os.path.join(ROOT, "benchmarks", "results")
RESULTS = os.path.join(ROOT, "benchmarks", "RESULTS.md")

#: Order of the sections in RESULTS.md; a section not listed comes after these, by name.
ORDER = ["demo", "jacobian", "backprop", "train", "train_sweep", "train_parts", "study", "xor_exact", "ppca",
         "ppca_outofcore", "devices"]

_META = re.compile(r"\A<!-- section: (\{.*\}) -->\n")
FIGURE = re.compile(r"<!-- figure: ([a-z0-9_]+\.[a-z0-9_.]+) = (.+?) -->")
_ANY_FIGURE = re.compile(r"<!-- figure:.*? = .*?-->")
_KEY = re.compile(r"[a-z0-9_]+\.[a-z0-9_.]+")


def check_figure(key: str, value: str, what: str) -> None:
    """A figure must survive the round trip through its marker; say what is wrong otherwise."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"figure key must look like 'section.name' (lower case, digits, _ and .), got {key!r}")
    for label, text in (("value", value), ("description", what)):
        if not text or text != text.strip() or any(bad in text for bad in ("\n", "-->", "|")):
            raise ValueError(f"figure {key}: {label} must be one non-empty trimmed line without '|' or '-->', "
                             f"got {text!r}")


def render_section(meta: dict, intro: str, output: str, notes: list[str], figures: list[tuple[str, str, str]]) -> str:
    """A section file's text: its record, title, what was run and how, the output, notes and figures."""
    head = json.dumps(meta, ensure_ascii=False).replace("--", "-\\u002d")
    seconds = "" if meta.get("seconds") is None else f", {meta['seconds']} s"
    lines = [f"<!-- section: {head} -->", f"## {meta['title']}", "",
             f"*{meta['date']}{seconds}, load average {meta['load_before']} before, {meta['load_after']} after.*"]
    if intro.strip():
        lines += ["", intro.strip()]
    lines += ["", "```", output.strip("\n"), "```"]
    for note in notes:
        lines += ["", note.strip()]
    if figures:
        lines += ["", "Figures (the README quotes them by key):", ""]
        for key, value, what in figures:
            check_figure(key, value, what)
            lines.append(f"- `{key}` = {value}: {what} <!-- figure: {key} = {value} -->")
    return "\n".join(lines) + "\n"


def read_sections(folder: str = SECTIONS) -> list[dict]:
    """Every ``*.md`` in ``folder``: its record (``meta``) and its text, in RESULTS.md order."""
    sections = []
    for path in glob.glob(os.path.join(folder, "*.md")):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        match = _META.match(text)
        if not match:
            raise ValueError(f"{path}: the first line must be '<!-- section: {{...json...}} -->' (collect.py says "
                             f"what a section looks like); it is {text.splitlines()[:1]!r}")
        meta = json.loads(match.group(1))
        name = os.path.basename(path)[:-3]
        if meta.get("name") != name:
            raise ValueError(f"{path}: its record names the section {meta.get('name')!r}, its file name {name!r}")
        for key in FIGURE.findall(text):
            if not key[0].startswith(name + "."):
                raise ValueError(f"{path}: figure {key[0]!r} must start with the section's name, {name + '.'!r}")
        sections.append({"meta": meta, "text": text[match.end():]})
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(sections, key=lambda s: (rank.get(s["meta"]["name"], len(ORDER)), s["meta"]["name"]))


def parse_figures(text: str) -> dict[str, str]:
    """``{key: value}`` of every figure marker in ``text``; a key given twice is an error."""
    figures: dict[str, str] = {}
    for m in _ANY_FIGURE.finditer(text):
        if not FIGURE.fullmatch(m.group(0)):
            raise ValueError(f"malformed figure marker {m.group(0)!r}: a key is section.name in lower case")
    for key, value in FIGURE.findall(text):
        if key in figures:
            raise ValueError(f"figure {key!r} is given twice ({figures[key]!r} and {value!r})")
        figures[key] = value
    return figures


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def assemble(sections: list[dict], reports: list[str] = ()) -> str:
    """RESULTS.md from the sections (and the names of ``make device-check`` reports to link)."""
    lines = ["# Benchmark results", "",
             "Each section below is written by a script in `benchmarks/` run with `--record` (the command heads "
             "its output) into `benchmarks/results/<name>.md`, and `python benchmarks/collect.py` assembles them "
             "here: do not edit this file, rerun the script. `make bench` reruns every section but the 6.3 GB "
             "out-of-core one (`make bench-outofcore`) and the demo's (`make demo-record`). Each script times ours "
             "and its baselines the same way (same statistic, same number of runs, interleaved where the box is "
             "shared) in one process. The README and the pages under `docs/` quote the figures listed at the end "
             "of each section, and `tests/test_readme_figures.py` checks that they quote them exactly.", ""]
    machines: dict[str, list[str]] = {}
    for s in sections:
        machines.setdefault(s["meta"]["machine"], []).append(s["meta"]["name"])
    if len(machines) == 1:
        lines.append(f"**Machine:** {next(iter(machines))}.")
    else:
        lines.append("**Machines:**")
        lines += [f"- {m} ({', '.join(names)})" for m, names in machines.items()]
    lines += ["", "| section | measured | load average (1, 5, 15 min) before; after | seconds |", "|---|---|---|---:|"]
    total = 0
    for s in sections:
        m = s["meta"]
        total += m.get("seconds") or 0
        seconds = "—" if m.get("seconds") is None else str(m["seconds"])
        lines.append(f"| [{m['name']}](#{_anchor(m['title'])}) | {m['date']} | {m['load_before']}; {m['load_after']} | "
                     f"{seconds} |")
    lines += [f"| all | | | {total} |", ""]
    rows = [row for s in sections for row in s["meta"].get("summary", [])]
    if rows:
        lines += ["| benchmark | target | result |", "|---|---|---|"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    if reports:
        lines += ["Reports of `make device-check` (tests and small float32 benchmarks on one backend): "
                  + ", ".join(f"[`{r}`]({r})" for r in reports) + ".", ""]
    body = "\n".join(lines)
    for s in sections:
        body += "\n" + s["text"]
    parse_figures(body)  # a key given twice anywhere is an error here, not a silent pick in the test
    return body


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def device_reports(folder: str = os.path.join(ROOT, "benchmarks")) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "RESULTS-*.md")))


def write_results() -> str:
    sections = read_sections()
    write_atomically(RESULTS, assemble(sections, device_reports()))
    return f"assembled {os.path.relpath(RESULTS, ROOT)} from {len(sections)} sections"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if RESULTS.md differs")
    args = parser.parse_args(argv)
    if args.check:
        with open(RESULTS, encoding="utf-8") as f:
            same = f.read() == assemble(read_sections(), device_reports())
        print("RESULTS.md is up to date" if same else
              "RESULTS.md differs from what benchmarks/results/*.md assemble to: run python benchmarks/collect.py")
        return 0 if same else 1
    print(write_results())
    return 0


if __name__ == "__main__":
    sys.exit(main())
