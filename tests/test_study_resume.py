"""The XOR study survives interruption: each width's block of rows is written as soon as it is trained,
a rerun on the same output directory trains only the missing blocks and gives the same table, blocks
of another study are refused (or replaced on request), and the final files never stand beside blocks
they do not come from."""

import json
import os
import pathlib
import re
import shutil

import pytest

from lecture6 import rundir, study

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Two widths, a program each; width 1 never solves XOR, width 3 often does within 200 epochs, so the
# table holds both zero and non-zero counts (and final losses that differ cell by cell).
WIDTHS, ACTS, SEEDS = (1, 3), ("tanh",), 16


def _config(**kw):
    config = rundir.load_config_file(str(ROOT / "configs" / "xor.py"))
    config.update({"epochs": 200, "log_every": 100, **kw})
    return config


def _run(outdir, log=None, **kw):
    kw = {"widths": WIDTHS, "activations": ACTS, "seeds": SEEDS, **kw}
    return study.solvability_study(_config(), outdir=str(outdir), log=log or (lambda s: None), **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted study with its blocks and final files: ``(outdir, rows, log lines)``."""
    outdir = tmp_path_factory.mktemp("study") / "out"
    lines = []
    rows, timing = _run(outdir, log=lines.append)
    study.write_study(rows, str(outdir), header="tiny", timing=timing)
    return outdir, rows, lines


def _copy(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    return out


def _snapshot(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_each_block_is_written_while_the_program_runs(finished):
    outdir, rows, lines = finished
    assert sorted(os.listdir(outdir / "cells")) == ["width_1.json", "width_3.json"]  # no temporary file left
    # The blocks are reported as each width's program finishes, widest first, before the run returns.
    start = next(i for i, s in enumerate(lines) if s.startswith("the study: 2 cells x 16 seeds, 2 programs"))
    trained = next(i for i, s in enumerate(lines) if s.startswith("compiled and trained in"))
    done = [i for i, s in enumerate(lines) if re.fullmatch(r"width \d done \(compiled in [0-9.]+ s\): wrote "
                                                               r"cells/width_\d\.json", s)]
    assert [lines[i][:7] for i in done] == ["width 3", "width 1"] and all(start < i < trained for i in done)
    for width in WIDTHS:
        block = json.loads((outdir / "cells" / f"width_{width}.json").read_text())
        assert block["fingerprint"]["width"] == width and block["fingerprint"]["config"]["seeds"] == SEEDS
        assert block["rows"] == [r for r in rows if r["width"] == width]
    assert {r["width"]: r["solved"] for r in rows}[1] == 0 and {r["width"]: r["solved"] for r in rows}[3] > 0


def test_a_rerun_trains_only_the_missing_block_and_gives_the_same_table(finished, tmp_path):
    out = _copy(finished, tmp_path)
    kept = (out / "cells" / "width_1.json").stat()
    os.remove(out / "cells" / "width_3.json")  # as if the run had been killed before width 3 finished
    lines, finals_while_training = [], []

    def log(s):
        lines.append(s)
        if s.startswith("the study: "):
            finals_while_training.extend(f for f in study.FINAL_FILES if (out / f).exists())

    rows, timing = _run(out, log=log)
    assert any(s.startswith("reusing the finished blocks of width 1 from") for s in lines)
    assert any(s.startswith("the study: 1 cells x 16 seeds, 1 program (one per width") for s in lines)
    assert (timing["computed_widths"], timing["reused_widths"]) == ([3], [1])
    reused = (out / "cells" / "width_1.json").stat()
    assert (reused.st_ino, reused.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not rewritten
    # While anything is being trained, no table from the earlier run is left to look finished.
    assert finals_while_training == []
    assert rows == finished[1]
    study.write_study(rows, str(out), header="tiny", timing=timing)
    for name in ("study.md", "study.csv"):
        assert (out / name).read_text() == (finished[0] / name).read_text()
    assert json.loads((out / "summary.json").read_text())["rows"] == finished[1]


def test_blocks_of_another_study_are_refused_before_anything_is_touched(finished, tmp_path, monkeypatch):
    out = _copy(finished, tmp_path)
    before = _snapshot(out)

    def no_compile(*args, **kwargs):
        raise AssertionError("nothing may be compiled when a block is refused")

    monkeypatch.setattr(study, "make_study", no_compile)
    with pytest.raises(ValueError, match=r"(?s)width_1\.json: it was computed for another study: "
                                         r"config\.seeds = 16 in the block, 17 now.*width_3\.json"):
        _run(out, seeds=17)
    with pytest.raises(ValueError, match=r"config\.lr = 0\.1 in the block, 0\.2 now"):
        study.solvability_study(_config(lr=0.2), widths=WIDTHS, activations=ACTS, seeds=SEEDS, outdir=str(out),
                                log=lambda s: None)
    with pytest.raises(ValueError, match=r"activations = \['tanh'\] in the block, \['tanh', 'relu'\] now"):
        _run(out, activations=("tanh", "relu"))
    (out / "cells" / "width_3.json").write_text('{"fingerprint": ')  # cut short by hand
    with pytest.raises(ValueError, match=r"width_3\.json: it cannot be read as a cell block"):
        _run(out)
    (out / "cells" / "width_3.json").write_bytes(before["cells/width_3.json"])
    assert _snapshot(out) == before  # the finished study is intact


def test_replace_stale_recomputes_only_the_stale_block(finished, tmp_path, monkeypatch):
    out = _copy(finished, tmp_path)
    path = out / "cells" / "width_1.json"
    block = json.loads(path.read_text())
    block["fingerprint"]["config"]["epochs"] = 300
    path.write_text(json.dumps(block))
    asked = []

    class Planned(Exception):
        pass

    def record(config, cells, data, **kwargs):
        asked.append(list(cells))
        raise Planned

    monkeypatch.setattr(study, "make_study", record)
    lines = []
    with pytest.raises(Planned):
        _run(out, log=lines.append, replace_stale=True)
    assert asked == [[("tanh", 1)]]  # width 3's block is reused, width 1's is trained again
    assert any("recomputing" in s and "config.epochs = 300 in the block, 200 now" in s for s in lines)
    assert not any((out / f).exists() for f in study.FINAL_FILES)  # the old table went before training
