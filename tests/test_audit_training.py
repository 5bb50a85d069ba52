"""The XOR training row checks the figures README.md quotes: the same numbers, read from the README."""

import pathlib

from lecture6.audit import training
from lecture6.audit._ref import wilson

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_the_xor_row_checks_the_figures_the_readme_quotes():
    text = " ".join(README.read_text().split())  # line breaks of the Markdown source do not matter
    q = training.QUOTED
    # the xor_study table: width 2, relu
    assert f"| 2 | {q['solve rate']:.4f} [" in text
    # the "XOR problem" erratum note
    assert (f"{q['negative pair collapsed']:.0%} collapse the negative pair, "
            f"{q['positive pair collapsed']:.0%} the positive pair") in text


def test_wilson_interval_matches_the_closed_form():
    k, n, z = 250, 1000, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    low, high = wilson(k, n)
    assert abs(low - (centre - half)) < 1e-12 and abs(high - (centre + half)) < 1e-12


def test_a_quoted_figure_outside_the_interval_is_reported():
    ok, text = training._in_interval("solve rate", 120, 1000)  # 12% +- 2%: excludes the quoted 23.78%
    assert not ok and "does not contain the quoted 23.8%" in text
    ok, text = training._in_interval("solve rate", 250, 1000)
    assert ok and "250/1000 = 25.0%" in text
