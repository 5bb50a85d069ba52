"""The XOR training row checks the figures README.md quotes: the exact record of them (RESULTS.md's xor_exact
section, which the README's quotes must match, tests/test_readme_figures.py) holds the same numbers."""

import os
import sys

from lecture6.audit import training
from lecture6.audit._ref import wilson

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import collect  # noqa: E402


def test_the_xor_row_checks_the_figures_the_readme_quotes():
    with open(collect.RESULTS, encoding="utf-8") as f:
        figures = collect.parse_figures(f.read())
    q = training.QUOTED
    assert figures["xor_exact.relu_2"].startswith(f"{q['solve rate']:.4f} [")  # the study table: width 2, relu
    assert figures["xor_exact.collapse_negative"] == f"{q['negative pair collapsed']:.0%}"
    assert figures["xor_exact.collapse_positive"] == f"{q['positive pair collapsed']:.0%}"


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
