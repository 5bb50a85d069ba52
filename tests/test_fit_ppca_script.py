"""Smoke test of scripts/fit_ppca.py on a tiny config, outputs read back; config and atomic writes."""

import json
import os
import pathlib
import subprocess
import sys

import matplotlib.image
import pytest

from lecture6.rundir import atomic_workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "fit_ppca.py"
PNGS = ["samples.png", "directions.png", "spectrum.png", "reconstructions.png", "heldout_vs_q.png"]


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), "--config", str(ROOT / "configs" / "ppca.py"),
                           *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_fit_ppca_writes_metrics_and_plots(tmp_path):
    workdir = tmp_path / "runs" / "ppca"
    proc = _run("--config.dataset=digits", "--config.q=3", "--config.em_iters=40",
                "--config.gradient_steps=500", "--config.q_grid=(1,2,3,5)", "--config.n_samples=8",
                f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    assert "fitting em" in proc.stdout and "wrote" in proc.stdout  # progress is reported

    config = json.loads((workdir / "config.json").read_text())
    assert config["q"] == 3 and config["dataset"] == "digits" and config["em_iters"] == 40
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == 1797
    assert (metrics["d"], metrics["q"]) == (64, 3) and metrics["sigma2"] > 0
    for method in ("closed_form", "em", "gradient"):
        m = metrics[method]
        assert set(m) >= {"train_loglik", "test_loglik", "fit_seconds"}
        assert m["fit_seconds"] > 0
        # The closed form is the maximum: no route beats it on the training data.
        assert m["train_loglik"] <= metrics["closed_form"]["train_loglik"] + 1e-9
        assert m["train_loglik"] > metrics["closed_form"]["train_loglik"] - 0.05
    for name in PNGS:
        image = matplotlib.image.imread(workdir / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # Nothing but the finished workdir is left behind.
    assert sorted(os.listdir(tmp_path / "runs")) == ["ppca"]


def test_unknown_override_is_rejected(tmp_path):
    proc = _run("--config.qq=3", f"--workdir={tmp_path / 'w'}")
    assert proc.returncode != 0
    assert "qq" in proc.stderr
    assert not (tmp_path / "w").exists()


def _write(workdir, fn):
    with atomic_workdir(str(workdir)) as d:
        fn(d)


def test_a_failed_write_leaves_the_old_workdir(tmp_path):
    workdir = tmp_path / "out"
    _write(workdir, lambda d: (pathlib.Path(d) / "a.txt").write_text("old"))
    assert (workdir / "a.txt").read_text() == "old"

    def crash(d):
        (pathlib.Path(d) / "metrics.json").write_text("{")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError, match="crash while writing"):
        _write(workdir, crash)
    assert sorted(os.listdir(tmp_path)) == ["out"] and sorted(os.listdir(workdir)) == ["a.txt"]
    _write(workdir, lambda d: (pathlib.Path(d) / "b.txt").write_text("new"))
    assert sorted(os.listdir(workdir)) == ["b.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
