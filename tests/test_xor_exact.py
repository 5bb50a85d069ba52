"""The XOR study's 18 cells at 10,000 seeds and the collapse shares of the 2-2-1 ReLU network, recomputed
exactly as users get them and compared with the figures RESULTS.md records (which the README quotes).

Seeds are deterministic, so a training change that moves any count fails here. The counts belong to the
jax/jaxlib that recorded them (the ``xor_exact.versions`` figure): on another version a difference is
reported with both tables (a skip, listed by ``-ra``), never silently accepted and never a failure there.
"""

import json
import os
import sys

import launches
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import collect  # noqa: E402

# benchmarks/record_xor.py as `make bench` runs it: its own process, JAX's and XLA's default settings (as
# every launch, tests/conftest.py).
RECORD = launches.launch("record_xor", lambda out: launches.python(
    "benchmarks/record_xor.py", "--json", f"{out}/xor.json"))


def recorded() -> dict[str, str]:
    with open(collect.RESULTS, encoding="utf-8") as f:
        figures = collect.parse_figures(f.read())
    return {k.split(".", 1)[1]: v for k, v in figures.items() if k.startswith("xor_exact.")}


def side_by_side(got: dict, want: dict) -> str:
    keys = sorted(set(got) | set(want))
    rows = [f"  {k:18s} recorded {want.get(k)!s:26s} now {got.get(k)!s:26s}" for k in keys]
    return "\n".join(row + ("" if got.get(k) == want.get(k) else "  <--") for k, row in zip(keys, rows))


def test_the_xor_study_table_and_collapse_counts_are_exactly_the_recorded_ones():
    p = RECORD.result()
    assert p.returncode == 0, p.stdout + p.stderr
    with open(f"{RECORD.out}/xor.json") as f:
        got = json.load(f)["figures"]
    want = recorded()
    assert len([k for k in want if k.split("_")[0] in ("relu", "tanh", "sigmoid")]) == 18, sorted(want)
    if {k: v for k, v in got.items() if k != "versions"} == {k: v for k, v in want.items() if k != "versions"}:
        return  # every count as recorded (on the recorded jax/jaxlib, or on another that computes the same)
    table = side_by_side(got, want)
    if got["versions"] != want["versions"]:
        pytest.skip(f"the XOR counts on {got['versions']} differ from the record for {want['versions']}:\n{table}")
    pytest.fail(f"the XOR counts moved (same {got['versions']}): a training change changed them\n{table}")


def test_the_record_names_the_versions_it_belongs_to():
    assert recorded()["versions"].startswith("jax ")
    assert ", jaxlib " in recorded()["versions"]
