"""Every number a reader sees on README.md and the docs/ pages is tied to the code that computed it.

RESULTS.md is assembled by ``benchmarks/collect.py`` from the sections the benchmark scripts (and
``benchmarks/record_demo.py``, ``benchmarks/record_xor.py``) write, ``benchmarks/results/*.md``; each section
lists its figures as ``<!-- figure: key = value -->``. A page quotes a figure by writing its value followed by
``<!-- figure: key -->``. These tests read text only (milliseconds):

* every page quotes every figure exactly (same rounding, nothing glued in front);
* a number of the kinds that are measured -- a time, a memory size, a rate, a ratio, a percentage, nats,
  bits, an accuracy-like decimal (0.xx, or three decimals or more), a value in scientific notation
  (``3·10⁻⁵``, or ``2.6e-13`` with a decimal mantissa: ``1e-12`` is a tolerance), a numeric cell of a
  table -- appears only as a quoted figure, inside an output block that ``tests/test_docs.py`` checks by
  running the block above it, or with ``<!-- exempt: reason -->`` after it, where the reason is one of
  :data:`EXEMPT_REASONS` (data sizes, seed counts, slide numbers, versions, flags and defaults, the
  lecture's constants). Not counted: a value glued to ``=`` (a flag or an argument in code), a target or a
  default ("within 1.2×", "under 10 s", "at least 2×", "default 3 s"; times, sizes, rates, ratios and
  percentages only), a version (``0.10.2``), a shape (``2×2``), the first column and the header row of a
  table (labels). The patterns are heuristics written for these pages: the self-tests below list what
  each catches and lets through;
* RESULTS.md is exactly what its sections assemble to, so neither file can be edited alone.
"""

from __future__ import annotations

import importlib.util
import os
import re

import pytest
from docs_pages import PAGES, read

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

#: Why a number of a measured kind may stand without a figure marker: ``6.3 GB<!-- exempt: data size -->``.
EXEMPT_REASONS = ("data size", "seed count", "slide", "version", "flag", "constant")
EXEMPT = re.compile(r"<!-- exempt: ([a-z ]+) -->")
ANY_EXEMPT = re.compile(r"<!-- exempt:(.*?)-->")

# A number: digits with thousands separators and decimals, maybe in scientific notation (4.9·10⁷, 2.6e-13).
_NUM = r"(?<![\w.=⁰¹²³⁴⁵⁶⁷⁸⁹])\d[\d,]*(?:\.\d+)?(?:·10[⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+|e[-+]?\d+)?(?![\d.]\d)"
_UNIT = (r"(?:\s?(?:%|×|nats?\b|bits?\b|[KMGT]i?B\b|kB\b|bytes?\b|[\w-]*/s\b|per second\b"
         r"|(?:s|ms|µs|us|ns|min|minutes?|seconds?|hours?)\b))")
#: The measured kinds, each a pattern over one line (markers and code values taken out first).
KINDS = {
    "time": re.compile(_NUM + r"\s?(?:s|ms|µs|us|ns|min|minutes?|seconds?|hours?)\b"),
    "memory size": re.compile(_NUM + r"\s?(?:[KMGT]i?B|kB|bytes?)\b"),
    "rate": re.compile(_NUM + r"\s?(?:[\w-]*/s\b|per second\b)"),
    "ratio": re.compile(_NUM + r"(?:×(?!\s?\d)|x\b)"),
    "percentage": re.compile(_NUM + r"\s?%"),
    "nats": re.compile(_NUM + r"\s?nats?\b"),
    "bits": re.compile(_NUM + r"\s?bits?\b"),
    "accuracy-like decimal": re.compile(r"(?<![\w.=])(?:0\.\d{2,}|\d+\.\d{3,})(?![\d.]*\d)"),
    "measured value in scientific notation": re.compile(
        r"(?<![\w.=])(?:\d\.\d+e[-+]?\d+|\d(?:\.\d+)?·10[⁻]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)"),
}
# A stated target or a default is not a measurement: "within 1.2×", "under 10 s", "≥ 2×", "default 3 s".
TARGET = re.compile(r"(?:within|≥|≤|<|>|at least|at most|target of|under|under about|no slower than|default)\s*$")
# The kinds a target or a default is stated in; "within 7 nats of the maximum" or "to 2.6e-13" is a measurement.
TARGET_KINDS = ("time", "memory size", "rate", "ratio", "percentage")
# A table cell that is a number, or numbers, maybe with a unit: "0.2378 [0.2296, 0.2462]", "4,000 / 1,000".
NUMERIC_CELL = re.compile(r"[\s\d.,\[\]()–\-/±·⁰¹²³⁴⁵⁶⁷⁸⁹⁻e+×%*]*\d[\s\d.,\[\]()–\-/±·⁰¹²³⁴⁵⁶⁷⁸⁹⁻e+×%*]*"
                          r"(?:\s?[A-Za-zµ/]{1,9})?")
TIED = "\u27e8tied\u27e9"  # what a quoted figure or an exempt number is replaced by before the scan


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _mask_code_spans(text: str) -> str:
    """``text`` with every inline code span that holds a marker blanked (same length): a page may show the
    marker syntax, `value<!-- figure: key -->`, without it being a quote."""
    return re.sub(r"`[^`\n]*`", lambda m: " " * len(m.group()) if "<!--" in m.group() else m.group(), text)


def quote_problems(readme: str, figures: dict[str, str], page: str = "README") -> list[str]:
    """Every ``value<!-- figure: key -->`` in a page whose value is not RESULTS.md's, or whose key is unknown."""
    problems = []
    readme = _mask_code_spans(readme)
    for m in ANY_MARKER.finditer(readme):
        quote = QUOTE.fullmatch(m.group(0))
        if not quote:
            problems.append(f"{page} line {_line(readme, m.start())}: malformed figure marker {m.group(0)!r} (a key "
                            "is section.name in lower case, e.g. '<!-- figure: study.first_s -->')")
            continue
        key, before = quote.group(1), readme[:m.start()]
        if key not in figures:
            problems.append(f"{page} line {_line(readme, m.start())}: figure {key!r} is not in RESULTS.md")
        elif not before.endswith(figures[key]) or before[-len(figures[key]) - 1:-len(figures[key])] in GLUED:
            quoted = before[-len(figures[key]) - 8:].split("\n")[-1]
            problems.append(f"{page} line {_line(readme, m.start())}: {key} is quoted as '...{quoted}', "
                            f"RESULTS.md says {figures[key]!r}")
    return problems


def _tie(line: str, figures: dict[str, str]) -> tuple[str, list[str]]:
    """The line with every quoted figure and every exempt number replaced by :data:`TIED`; bad exemptions."""
    problems = []
    # a figure's value only where it is quoted right (quote_problems reports the rest): a wrong one stays, to be seen
    out, pos = [], 0
    for m in QUOTE.finditer(line):
        value = figures.get(m.group(1), "")
        head = line[pos:m.start()]
        if value and head.endswith(value):
            head = head[:-len(value)] + TIED
        out.append(head)
        pos = m.end()
    line = "".join(out) + line[pos:]
    out, pos = [], 0
    for m in ANY_EXEMPT.finditer(line):
        head = line[pos:m.start()]
        exempt = EXEMPT.fullmatch(m.group(0))
        number = re.search(_NUM + _UNIT + r"?$", head)
        if not exempt or exempt.group(1) not in EXEMPT_REASONS:
            problems.append(f"malformed exemption {m.group(0)!r}: the reason is one of {', '.join(EXEMPT_REASONS)}")
        elif not number:
            problems.append(f"{m.group(0)!r} follows no number ('...{head[-20:]}')")
        else:
            head = head[:number.start()] + TIED
        out.append(head)
        pos = m.end()
    return "".join(out) + line[pos:], problems


def scanned_lines(text: str):
    """``(line number, text, in_table)`` of what a reader takes as claims: prose, table rows, the comments of
    Python blocks and every line of other fenced blocks (commands, transcripts); not output blocks, which
    ``tests/test_docs.py`` checks by running the block above them."""
    fence, previous = None, ""
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            if fence is None:
                fence = "output" if previous.strip() == "<!-- output -->" else (line[3:].strip() or "text")
            else:
                fence = None
        elif fence == "python":
            if "#" in line:
                yield number, line[line.index("#"):], False
        elif fence not in ("output",):
            yield number, line, fence is None and line.lstrip().startswith("|")
        previous = line


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def untied_numbers(text: str, figures: dict[str, str], page: str = "README") -> list[str]:
    """Numbers of a measured kind that are neither a quoted figure nor exempt, each with where it stands."""
    problems, header_next = [], True
    for number, raw, in_table in scanned_lines(_mask_code_spans(text)):
        line, bad = _tie(raw, figures)
        problems += [f"{page} line {number}: {b}" for b in bad]
        line = re.sub(r"<!--.*?-->", "", line)
        if in_table:
            cells = _cells(line)
            if set("".join(cells)) <= set("-: "):  # the separator: the row above was the header
                header_next = False
                continue
            if header_next:
                continue
            prose_cells = []
            for cell in cells[1:]:
                bare = cell.replace("**", "").replace("`", "").replace(TIED, "").strip()
                if NUMERIC_CELL.fullmatch(bare):  # digits left that no quote or exemption covers
                    problems.append(f"{page} line {number}: the table cell {cell!r} is tied to nothing")
                else:
                    prose_cells.append(cell)
            line = " | ".join(prose_cells)
        else:
            header_next = True
        seen: list[tuple[int, int]] = []  # one report per number, under the first kind it is of
        for kind, pattern in KINDS.items():
            for m in pattern.finditer(line):
                if any(a < m.end() and m.start() < b for a, b in seen):
                    continue
                seen.append(m.span())
                if kind in TARGET_KINDS and TARGET.search(line[:m.start()]):
                    continue
                problems.append(f"{page} line {number}: {m.group().strip()!r} ({kind}) is tied to nothing: quote it "
                                f"from RESULTS.md, mark it exempt with its reason, or remove it "
                                f"(…{line[max(0, m.start() - 40):m.end() + 20].strip()}…)")
    return problems


@pytest.fixture(scope="module")
def results_text():
    with open(collect.RESULTS, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def figures(results_text):
    return collect.parse_figures(results_text)


@pytest.fixture(scope="module")
def readme_text():
    return read("README.md")


def test_results_md_is_what_the_benchmark_sections_assemble_to(results_text):
    expected = collect.assemble(collect.read_sections(), collect.device_reports())
    assert results_text == expected, ("benchmarks/RESULTS.md is not what benchmarks/results/*.md assemble to: "
                                      "edit or rerun the benchmark (--record), then python benchmarks/collect.py")


def test_the_pages_are_the_readme_and_the_docs():
    assert PAGES[0] == "README.md" and len(PAGES) > 1 and all(p.startswith("docs/") for p in PAGES[1:]), PAGES


@pytest.mark.parametrize("page", PAGES)
def test_every_quote_on_the_page_matches_results_md(figures, page):
    assert quote_problems(read(page), figures, page) == []


def test_the_readme_quotes_figures(readme_text):
    assert QUOTE.search(readme_text), "the README quotes no figure at all"


@pytest.mark.parametrize("page", PAGES)
def test_every_measured_number_on_the_page_is_quoted_or_exempt(figures, page):
    assert untied_numbers(read(page), figures, page) == []


@pytest.mark.parametrize("page", PAGES)
def test_a_number_edited_alone_is_caught(figures, page):
    """Every quoted figure on the page, one at a time, its last digit changed: exactly that quote fails."""
    text = read(page)
    quoted = [m for m in QUOTE.finditer(text) if re.search(r"\d", figures.get(m.group(1), ""))]
    for m in quoted:
        value = figures[m.group(1)]
        digit = max(i for i, c in enumerate(value) if c in "0123456789")
        edited_value = value[:digit] + str((int(value[digit]) + 1) % 10) + value[digit + 1:]
        start = m.start() - len(value)
        edited = text[:start] + edited_value + text[m.start():]
        problems = quote_problems(edited, figures, page)
        assert len(problems) == 1 and m.group(1) in problems[0] and repr(value) in problems[0], problems


@pytest.mark.parametrize("prefix", ["1", "9.", ",", "-"])
def test_a_number_with_a_digit_or_separator_in_front_is_caught(figures, prefix):
    for page in PAGES:
        text = read(page)
        for m in QUOTE.finditer(text):
            value = figures[m.group(1)]
            start = m.start() - len(value)
            edited = text[:start] + prefix + text[start:]
            problems = quote_problems(edited, figures, page)
            assert len(problems) == 1 and m.group(1) in problems[0], (page, prefix, m.group(1), problems)


def test_a_marker_key_in_capitals_or_malformed_is_an_error():
    figures = {"study.first_s": "8.7"}
    assert quote_problems("took 8.7<!-- figure: study.first_s --> s", figures) == []
    for marker in ("<!-- figure: Study.First_s -->", "<!-- figure: study -->", "<!-- figure:study.first_s -->"):
        problems = quote_problems(f"took 8.7{marker} s", figures)
        assert len(problems) == 1 and "malformed figure marker" in problems[0], (marker, problems)
    with pytest.raises(ValueError, match="malformed figure marker"):
        collect.parse_figures("<!-- figure: Study.first_s = 8.7 -->")


def test_a_results_figure_edited_alone_is_caught(results_text, readme_text, figures):
    key = next(m.group(1) for m in QUOTE.finditer(readme_text))
    assert quote_problems(readme_text, {**figures, key: figures[key] + "0"}) != []
    edited = results_text.replace(f"<!-- figure: {key} = {figures[key]} -->", f"<!-- figure: {key} = 0 -->")
    assert edited != results_text
    assert edited != collect.assemble(collect.read_sections(), collect.device_reports())


@pytest.mark.parametrize("text, kind", [
    ("the demo took 43 s of wall time", "time"),
    ("compiled in 1.6 s", "time"),
    ("each step 120 ms", "time"),
    ("a peak of 441 MiB", "memory size"),
    ("a file of 6.3 GB", "memory size"),
    ("2.1·10⁷ seed-steps/s", "rate"),
    ("1.2e+08 seed-steps/s", "rate"),
    ("Ours is 3.1× faster", "ratio"),
    ("ours is 2.13x faster", "ratio"),
    ("45% collapse the negative pair", "percentage"),
    ("within about 7 nats of the maximum", "nats"),
    ("5.92 bits/dim", "bits"),
    ("a test accuracy of 0.9337", "accuracy-like decimal"),
    ("σ² = 0.0343", "accuracy-like decimal"),
    ("train 504.4717 per sample", "accuracy-like decimal"),
    ("agreeing to 2.6e-13", "measured value in scientific notation"),
    ("ended within 2.4·10⁻⁷ of one device", "measured value in scientific notation"),
    ("σ² falls from 3·10⁻⁵ at q = 550", "measured value in scientific notation"),
])
def test_an_unmarked_number_of_each_measured_kind_is_caught(text, kind):
    problems = untied_numbers(text + "\n", {})
    assert len(problems) >= 1 and any(f"({kind})" in p for p in problems), problems


def test_what_is_not_a_measurement_passes():
    fine = [
        "10,000 XOR networks × 2,000 SGD steps, a 2×2 `W`, 28×28 pixels, (64 × 784)",
        "the target is within 1.2×, under 10 s, ≥ 2×, at least 2× faster; default 3 s; under about 2 minutes",
        "`--config.lr=0.05`, `rtol=1e-7`, tolerance 1e-12, q = 10, 4,000 training images, 45 claims",
        "jax and jaxlib 0.10.2, Python 3.12.1, versions 3.11 or 3.13",
        "```python\nmodel = ppca.fit_em(X, 10, iters=300)   # EM, then 0.5 off\n```",
        "```python\nprint(0.25)\n```\n<!-- output -->\n```\n0.25 and 1.2 s\n```",
        "| width | relu |\n|---:|---:|\n| 16 | 1.0000<!-- figure: a.b --> |",
        "a 6.3 GB<!-- exempt: data size --> file; 20%<!-- exempt: flag --> held out",
    ]
    for text in fine:
        assert untied_numbers(text + "\n", {"a.b": "1.0000"}) == [], text


def test_unmarked_table_cells_python_comments_and_transcripts_are_caught():
    table = "| q | 1 | 5 |\n|---|---|---|\n| bits/dim | 8.032 | 7.831<!-- figure: a.b --> |\n"
    problems = untied_numbers(table, {"a.b": "7.831"})
    assert len(problems) == 1 and "'8.032'" in problems[0], problems
    assert untied_numbers("| data | images |\n|---|---|\n| MNIST | 4,000 / 1,000 |\n", {}) != []
    half = "| data | images |\n|---|---|\n| MNIST | 4,000<!-- exempt: data size --> / 1,000 |\n"
    assert untied_numbers(half, {}) != []
    assert untied_numbers(half.replace("1,000 |", "1,000<!-- exempt: data size --> |"), {}) == []
    comment = "```python\nll.mean()   # 16.79 nats per held-out image\n```\n"
    assert any("(nats)" in p for p in untied_numbers(comment, {}))
    transcript = "```\n$ make demo\n  closed_form: train 188.0072 (0.19 s)\n```\n"
    assert len(untied_numbers(transcript, {})) == 2


def test_marker_syntax_shown_in_code_is_not_a_quote():
    text = "a page quotes one as `value<!-- figure: key -->`, a constant as `8 bits<!-- exempt: reason -->`\n"
    assert quote_problems(text, {}) == [] and untied_numbers(text, {}) == []
    assert quote_problems("took 9.9<!-- figure: a.b --> s, not `this`\n", {"a.b": "8.7"}) != []
    between = "`x` took 9.9<!-- figure: a.b --> s, not `y`\n"  # a marker between two code spans is a quote
    assert quote_problems(between, {"a.b": "8.7"}) != [] and untied_numbers(between, {"a.b": "8.7"}) != []


def test_exemptions_are_checked():
    for text in ("6.3 GB<!-- exempt: measured -->", "6.3 GB<!-- exempt:data size -->", "GB<!-- exempt: data size -->"):
        problems = untied_numbers(text + "\n", {})
        assert problems and any("exempt" in p for p in problems), (text, problems)


def test_unknown_readme_key_and_bad_section_are_named(tmp_path):
    assert "not in RESULTS.md" in quote_problems("5×<!-- figure: nope.key -->", {})[0]
    (tmp_path / "x.md").write_text("## no record line\n")
    with pytest.raises(ValueError, match="first line must be"):
        collect.read_sections(str(tmp_path))
    with pytest.raises(ValueError, match="given twice"):
        collect.parse_figures("<!-- figure: a.b = 1 --> <!-- figure: a.b = 2 -->")
