"""Smoke test of scripts/fit_ppca.py on a tiny config, outputs read back; the latent-variable figures
written directly; config and atomic writes."""

import json
import math
import os
import pathlib
import struct
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from lecture6 import ppca_plots
from lecture6.rundir import atomic_workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "fit_ppca.py"
PNGS = ["samples.png", "directions.png", "spectrum.png", "reconstructions.png", "heldout_vs_q.png",
        "latent_traversal.png", "latent_space.png"]


def _check_png(path, *, min_size=(150, 150)):
    """A valid PNG (signature, IHDR) of a plausible size that matplotlib reads back with some contrast."""
    raw = pathlib.Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", raw[16:24])
    assert width >= min_size[0] and height >= min_size[1] and width * height < 4000 * 4000, (path, width, height)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width) and image.std() > 0.02, f"{path} looks blank"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), "--config", str(ROOT / "configs" / "ppca.py"),
                           *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_fit_ppca_writes_metrics_and_plots(tmp_path):
    workdir = tmp_path / "runs" / "ppca"
    # em_iters is left to the data set's default (300 for digits); the rest is kept small.
    proc = _run("--config.dataset=digits", "--config.q=3", "--config.gradient_steps=500",
                "--config.q_grid=(1,2,3,5)", "--config.n_samples=8", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    assert "fitting em" in proc.stdout and "wrote" in proc.stdout  # progress is reported
    assert "dequantized (17 grey levels)" in proc.stdout

    config = json.loads((workdir / "config.json").read_text())
    assert config["q"] == 3 and config["dataset"] == "digits" and config["dequantize"] is True
    assert config["em_iters"] == 300 and config["gradient_steps"] == 500  # as run: defaults filled in
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == 1797
    assert (metrics["d"], metrics["q"]) == (64, 3) and metrics["sigma2"] > 0
    assert metrics["dequantized"] is True and metrics["levels"] == 17
    for method in ("closed_form", "em", "gradient"):
        m = metrics[method]
        assert set(m) >= {"train_loglik", "test_loglik", "fit_seconds", "train_bits_per_dim", "test_bits_per_dim"}
        assert m["fit_seconds"] > 0
        # The closed form is the maximum: no route beats it on the training data.
        assert m["train_loglik"] <= metrics["closed_form"]["train_loglik"] + 1e-9
        assert m["train_loglik"] > metrics["closed_form"]["train_loglik"] - 0.05
        # bits/dim of 17-level pixels: (d ln 17 - loglik) / (d ln 2)
        assert m["test_bits_per_dim"] == pytest.approx((64 * math.log(17) - m["test_loglik"]) / (64 * math.log(2)))
    assert [r["q"] for r in metrics["heldout"]] == [1, 2, 3, 5]
    best = max(metrics["heldout"], key=lambda r: r["test_loglik"])
    assert metrics["best_q_heldout"] == best["q"] and metrics["best_heldout_bits_per_dim"] == best["test_bits_per_dim"]
    assert metrics["heldout"][2]["test_loglik"] == pytest.approx(metrics["closed_form"]["test_loglik"])
    for name in PNGS:
        _check_png(workdir / name)
    # Nothing but the finished workdir is left behind.
    assert sorted(os.listdir(tmp_path / "runs")) == ["ppca"]


def test_latent_and_heldout_figures_are_written(tmp_path, rng):
    # 28x28 images as in MNIST; three labelled clusters in a 2-D latent space.
    W, b = rng.standard_normal((784, 4)) * 0.1, rng.uniform(0, 1, 784)
    ppca_plots.latent_traversal(W, b, (28, 28), tmp_path / "latent_traversal.png", vrange=(0.0, 1.0))
    _check_png(tmp_path / "latent_traversal.png", min_size=(400, 400))  # 4 rows x 5 columns of images
    labels = np.repeat(np.arange(3), 50)
    H = rng.standard_normal((150, 2)) + 3.0 * np.eye(3, 2)[labels]
    ppca_plots.latent_space(H, labels, tmp_path / "latent_space.png")
    _check_png(tmp_path / "latent_space.png", min_size=(400, 400))
    with pytest.raises(ValueError, match=r"shape \(n, 2\), got \(150, 3\)"):
        ppca_plots.latent_space(np.zeros((150, 3)), labels, tmp_path / "bad.png")
    # A held-out curve with a collapse far below the rest (drawn on the bottom edge) and a bits/dim axis.
    ppca_plots.heldout_curve([1, 2, 5, 10, 20], [-10.0, 50.0, 80.0, 60.0, -1e6], 5, tmp_path / "heldout.png",
                             d=784, levels=256)
    _check_png(tmp_path / "heldout.png", min_size=(400, 250))


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
