"""The README's speed figures are quotes of benchmarks/RESULTS.md, and RESULTS.md is the benchmarks' own output.

RESULTS.md is assembled by ``benchmarks/collect.py`` from the sections the benchmark scripts write
(``benchmarks/results/*.md``); each section lists its figures as ``<!-- figure: key = value -->``. The
README quotes a figure by writing its value followed by ``<!-- figure: key -->``. These tests read text
only (milliseconds): the README must quote every figure exactly (same rounding), must not state a speed
ratio or rate without such a marker, and RESULTS.md must be exactly what its sections assemble to, so
neither file can be edited alone.
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def _load_collect():
    spec = importlib.util.spec_from_file_location("benchmarks_collect", os.path.join(ROOT, "benchmarks", "collect.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


collect = _load_collect()

QUOTE = re.compile(r"<!-- figure: ([a-z0-9_]+\.[a-z0-9_.]+) -->")
# Any figure marker at all, well-formed or not: a key the strict pattern above does not match (capitals, no
# section, stray spaces) would otherwise be skipped by one check and so never compared.
ANY_MARKER = re.compile(r"<!-- figure:(.*?)-->")
# What may not stand just before a quoted value: it would make the number read differently from the figure
# ("10.41" for 0.41, "1,054" for 054, "−2.4" for 2.4).
GLUED = set("0123456789.,·_'−-\u2009\u202f")
# A speed ratio ("2.36×"; not a shape such as 2×2) or a rate before "seed-steps/s".
RATIO = re.compile(r"\d[\d.,]*×(?!\s?\d)")
RATE = re.compile(r"\d[\d.,]*(?:·10[⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)?(?P<marker>\s*<!-- figure: [^>]*-->)?\s*seed-steps/s")
# Targets are stated, not measured: "within 1.2×", "≥ 2×", "at least 2×".
TARGET = re.compile(r"(?:within|≥|at least|target of|under)\s*$")


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def quote_problems(readme: str, figures: dict[str, str]) -> list[str]:
    """Every ``value<!-- figure: key -->`` in the README whose value is not RESULTS.md's, or whose key is unknown."""
    problems = []
    for m in ANY_MARKER.finditer(readme):
        quote = QUOTE.fullmatch(m.group(0))
        if not quote:
            problems.append(f"README line {_line(readme, m.start())}: malformed figure marker {m.group(0)!r} (a key is "
                            "section.name in lower case, e.g. '<!-- figure: study.first_s -->')")
            continue
        key, before = quote.group(1), readme[:m.start()]
        if key not in figures:
            problems.append(f"README line {_line(readme, m.start())}: figure {key!r} is not in RESULTS.md")
        elif not before.endswith(figures[key]) or before[-len(figures[key]) - 1:-len(figures[key])] in GLUED:
            quoted = before[-len(figures[key]) - 8:].split("\n")[-1]
            problems.append(f"README line {_line(readme, m.start())}: {key} is quoted as '...{quoted}', "
                            f"RESULTS.md says {figures[key]!r}")
    return problems


def prose(readme: str):
    """``(offset, line)`` of every README line outside fenced code blocks (transcripts are not claims)."""
    offset, fenced = 0, False
    for line in readme.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield offset, line
        offset += len(line) + 1


def unquoted_speed_figures(readme: str) -> list[str]:
    """Ratios and seed-step rates in the README's prose that are not followed by a figure marker."""
    problems = []
    for offset, line in prose(readme):
        for m in RATIO.finditer(line):
            if not line.startswith("<!-- figure:", m.end()) and not TARGET.search(line[:m.start()]):
                problems.append(f"README line {_line(readme, offset)}: {m.group()!r} is not quoted from RESULTS.md "
                                f"(…{line[max(0, m.start() - 40):m.end() + 20]}…)")
        for m in RATE.finditer(line):
            if not m.group("marker"):
                problems.append(f"README line {_line(readme, offset)}: the rate {m.group()!r} is not quoted from "
                                "RESULTS.md")
    return problems


@pytest.fixture(scope="module")
def results_text():
    with open(collect.RESULTS, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def readme_text():
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_results_md_is_what_the_benchmark_sections_assemble_to(results_text):
    expected = collect.assemble(collect.read_sections(), collect.device_reports())
    assert results_text == expected, ("benchmarks/RESULTS.md is not what benchmarks/results/*.md assemble to: "
                                      "edit or rerun the benchmark (--record), then python benchmarks/collect.py")


def test_every_readme_quote_matches_results_md(results_text, readme_text):
    figures = collect.parse_figures(results_text)
    assert QUOTE.search(readme_text), "the README quotes no figure at all"
    assert quote_problems(readme_text, figures) == []


def test_readme_states_no_speed_ratio_or_rate_without_its_source(readme_text):
    assert unquoted_speed_figures(readme_text) == []


def test_a_readme_number_edited_alone_is_caught(results_text, readme_text):
    figures = collect.parse_figures(results_text)
    m = next(m for m in QUOTE.finditer(readme_text) if re.search(r"\d", figures.get(m.group(1), "")))
    value = figures[m.group(1)]
    digit = max(i for i, c in enumerate(value) if c.isdigit())
    edited_value = value[:digit] + str((int(value[digit]) + 1) % 10) + value[digit + 1:]
    start = m.start() - len(value)
    edited = readme_text[:start] + edited_value + readme_text[m.start():]
    problems = quote_problems(edited, figures)
    assert len(problems) == 1 and m.group(1) in problems[0] and repr(value) in problems[0], problems


@pytest.mark.parametrize("prefix", ["1", "9.", ",", "-"])
def test_a_readme_number_with_a_digit_or_separator_in_front_is_caught(results_text, readme_text, prefix):
    figures = collect.parse_figures(results_text)
    for m in QUOTE.finditer(readme_text):
        value = figures[m.group(1)]
        start = m.start() - len(value)
        edited = readme_text[:start] + prefix + readme_text[start:]
        problems = quote_problems(edited, figures)
        assert len(problems) == 1 and m.group(1) in problems[0], (prefix, m.group(1), problems)


def test_a_marker_key_in_capitals_or_malformed_is_an_error():
    figures = {"study.first_s": "8.7"}
    assert quote_problems("took 8.7<!-- figure: study.first_s --> s", figures) == []
    for marker in ("<!-- figure: Study.First_s -->", "<!-- figure: study -->", "<!-- figure:study.first_s -->"):
        problems = quote_problems(f"took 8.7{marker} s", figures)
        assert len(problems) == 1 and "malformed figure marker" in problems[0], (marker, problems)
    with pytest.raises(ValueError, match="malformed figure marker"):
        collect.parse_figures("<!-- figure: Study.first_s = 8.7 -->")


def test_a_results_figure_edited_alone_is_caught(results_text, readme_text):
    figures = collect.parse_figures(results_text)
    key = next(m.group(1) for m in QUOTE.finditer(readme_text))
    assert quote_problems(readme_text, {**figures, key: figures[key] + "0"}) != []
    edited = results_text.replace(f"<!-- figure: {key} = {figures[key]} -->", f"<!-- figure: {key} = 0 -->")
    assert edited != results_text
    assert edited != collect.assemble(collect.read_sections(), collect.device_reports())


def test_a_speed_figure_without_a_marker_is_caught():
    text = "Ours is 3.1× faster than scikit-learn (2.1·10⁷ seed-steps/s); a 2×2 `W`; the target is within 1.2×.\n"
    problems = unquoted_speed_figures(text)
    assert len(problems) == 2 and "'3.1×'" in problems[0] and "seed-steps/s" in problems[1], problems
    assert unquoted_speed_figures("```\n3.1× in a transcript\n```\n") == []
    marked = "3.1×<!-- figure: a.b --> faster (2.1·10⁷<!-- figure: a.c --> seed-steps/s)\n"
    assert unquoted_speed_figures(marked) == []


def test_unknown_readme_key_and_bad_section_are_named(tmp_path):
    assert "not in RESULTS.md" in quote_problems("5×<!-- figure: nope.key -->", {})[0]
    (tmp_path / "x.md").write_text("## no record line\n")
    with pytest.raises(ValueError, match="first line must be"):
        collect.read_sections(str(tmp_path))
    with pytest.raises(ValueError, match="given twice"):
        collect.parse_figures("<!-- figure: a.b = 1 --> <!-- figure: a.b = 2 -->")
