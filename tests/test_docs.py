"""README.md is a front page, the long sections are pages under docs/, and every Python block of those
pages runs and prints what the page shows under it.

Each page's Python blocks run in order in a fresh interpreter (``tests/docs_pages.py`` says how, and what
the ``<!-- output -->`` and ``<!-- run with: ... -->`` directives mean), launched in the background
(``tests/launches.py``) with JAX's default settings, as a reader who pastes the blocks runs them: none of
the settings this suite's own process runs under (no ``JAX_DISABLE_MOST_OPTIMIZATIONS``, no session
compilation cache, no float64 unless the block asks for it).
"""

from __future__ import annotations

import json
import os
import re

import docs_pages
import launches
import pytest
from docs_pages import PAGES, blocks, expected_outputs, matches, read, runnable

# The variables conftest.py sets for this process; a reader's interpreter has none of them.
_SUITE_ONLY = {"JAX_DISABLE_MOST_OPTIMIZATIONS", "JAX_COMPILATION_CACHE_DIR",
               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"}
READER_ENV = {k: v for k, v in os.environ.items() if k not in _SUITE_ONLY}

RUNNABLE = [page for page in PAGES if any(b.is_python for b in blocks(read(page)))]
RUNS = {page: launches.launch(f"docs_{re.sub(r'[^a-z0-9]+', '_', page.lower())}",
                              lambda out, page=page: launches.python("tests/docs_pages.py", page, f"{out}/blocks.json"),
                              env=READER_ENV, timeout=300)
        for page in RUNNABLE}

FRONT_PAGE_LINES = 200


def _results(page: str) -> list[dict]:
    run = RUNS[page]
    r = run.result()
    assert r.returncode == 0, f"tests/docs_pages.py {page} failed:\n{r.stdout}\n{r.stderr}"
    with open(os.path.join(run.out, "blocks.json"), encoding="utf-8") as f:
        return json.load(f)


def output_problems(page: str, results: list[dict]) -> list[str]:
    """Every Python block of ``page`` that raised where no output shows it, or printed other than shown."""
    python = [b for b in blocks(read(page)) if b.is_python]
    assert [b.line for b in python] == [r["line"] for r in results], "the page changed while it ran"
    expected = expected_outputs(blocks(read(page)))
    problems = []
    for i, (b, r) in enumerate(zip(python, results)):
        shown = expected.get(i)
        actual = r["stdout"] + (r["error"] or "")
        if r["error"] and shown is None:
            problems.append(f"{page} line {b.line}: the block raised\n{r['traceback']}")
        elif shown is not None and not matches(shown.text, actual):
            problems.append(f"{page} line {b.line}: the output shown at line {shown.line} is\n{shown.text}\n"
                            f"but the block printed\n{actual}")
    return problems


def test_readme_is_a_front_page_that_links_every_docs_page():
    readme = read("README.md")
    assert len(readme.splitlines()) <= FRONT_PAGE_LINES, f"README.md has {len(readme.splitlines())} lines"
    docs = [p for p in PAGES if p.startswith("docs/")]
    assert docs, "no page under docs/"
    for page in docs:
        assert f"]({page})" in readme, f"README.md does not link {page}"


@pytest.mark.parametrize("page", RUNNABLE)
def test_every_python_block_runs_and_prints_what_the_page_shows(page):
    assert output_problems(page, _results(page)) == []


@pytest.mark.parametrize("page", [p for p in RUNNABLE if any(b.is_output for b in blocks(read(p)))])
def test_a_shown_output_edited_alone_is_caught(page):
    """Change one digit (or, where there is none, one letter) of each shown output: the comparison must fail."""
    results = _results(page)
    page_blocks = blocks(read(page))
    expected = expected_outputs(page_blocks)
    python = [b for b in page_blocks if b.is_python]
    checked = 0
    for i, shown in expected.items():
        if shown is None:
            continue
        text = shown.text
        k = max((j for j, c in enumerate(text) if c.isdigit()), default=None)
        if k is None:
            k = max(j for j, c in enumerate(text) if c.isalpha())
            edited = text[:k] + ("x" if text[k] != "x" else "y") + text[k + 1:]
        else:
            edited = text[:k] + str((int(text[k]) + 1) % 10) + text[k + 1:]
        r = results[i]
        assert matches(text, r["stdout"] + (r["error"] or "")), (page, python[i].line)
        assert not matches(edited, r["stdout"] + (r["error"] or "")), (page, python[i].line, edited)
        checked += 1
    assert checked


def test_output_comparison_wildcards_and_exactness():
    assert matches("a 1\n...\nz 3", "a 1\nb\nc\nz 3\n")
    assert matches("a 1\n...\nz 3", "a 1\nz 3")
    assert matches("worst ... (fd 0.75)", "worst entry (row 2) (fd 0.75)  ")
    assert not matches("a 1\nz 3", "a 1\nb\nz 3")
    assert not matches("worst ... (fd 0.75)", "worst entry\n(fd 0.75)")
    assert not matches("0.2378", "0.2379")
    assert not matches("0.2378", "10.2378")


def test_directives_are_checked():
    ok = '<!-- run with: "seeds = 10000" -> "seeds = 100" -->\n```python\nseeds = 10000\nprint(seeds)\n```\n' \
         '<!-- output -->\n```\n10000\n```\n'
    found = blocks(ok)
    assert [b.info for b in found] == ["python", ""] and found[1].is_output
    assert runnable(found[0]) == "seeds = 100\nprint(seeds)"
    assert expected_outputs(found) == {}  # run at another size: its output is not compared
    missing = blocks('<!-- run with: "nope" -> "x" -->\n```python\nx = 1\n```\n')[0]
    with pytest.raises(ValueError, match="not in the block"):
        runnable(missing)


@pytest.mark.parametrize("text", [
    "<!-- output -->\ntext\n",  # a directive away from a fence
    "<!-- output -->\n```\n1\n```\n",  # an output with no block above
    "```bash\nls\n```\n<!-- output -->\n```\nx\n```\n",  # the output of a shell block
    "<!-- run with: seeds -->\n```python\nx = 1\n```\n",  # a malformed substitution
    "```python\nx = 1\n",  # an unclosed fence
])
def test_a_misplaced_or_malformed_directive_is_an_error(text):
    with pytest.raises(ValueError):
        blocks(text)


def test_the_runner_reports_output_and_exception(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 2\nprint(x * 3)\n```\n<!-- output -->\n```\n6\n```\n"
                    "```python\nraise ValueError(f'bad x = {x}')\n```\n"
                    "<!-- output -->\n```\nValueError: bad x = 2\n```\n")
    monkeypatch.setattr(docs_pages, "ROOT", str(tmp_path))
    cwd = os.getcwd()
    try:
        results = docs_pages.run_page("page.md")
    finally:
        os.chdir(cwd)
    assert [r["stdout"] for r in results] == ["6\n", ""]
    assert results[1]["error"] == "ValueError: bad x = 2\n"
    assert output_problems("page.md", results) == []
    page.write_text(page.read_text().replace("bad x = 2\n```", "bad x = 3\n```"))
    problems = output_problems("page.md", results)
    assert len(problems) == 1 and "bad x = 3" in problems[0], problems


def test_demo_record_times_the_commands_make_demo_runs():
    """``make demo-record`` records the steps ``make -n demo`` lists (an independent reading of the Makefile)."""
    import importlib.util
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make on the PATH")
    listed = subprocess.run(["make", "-n", "--no-print-directory", "demo", "STAMP=", "PY=PY"], cwd=docs_pages.ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    spec = importlib.util.spec_from_file_location("record_demo", os.path.join(docs_pages.ROOT, "benchmarks",
                                                                              "record_demo.py"))
    record_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record_demo)
    recorded = [" ".join(["PY", *argv[1:]]) for argv in record_demo.demo_recipe()]
    assert recorded == [line for line in listed if line.strip()]
