"""Smoke tests: each training script runs on a tiny config into a temporary workdir, and its outputs are
read back; bad configs fail with a message naming the field and leave no finished-looking run."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lecture6.study import markdown_table, wilson_interval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def test_train_xor_script_writes_a_complete_run(tmp_path):
    workdir = tmp_path / "xor"
    p = run_script("train_xor.py", "--config", os.path.join(ROOT, "configs", "xor.py"),
                   "--config.seeds=16", "--config.epochs=200", "--config.log_every=20",
                   "--config.width=4", "--config.progress_every=100", f"--workdir={workdir}")
    assert p.returncode == 0, p.stderr
    assert "epoch    100/200" in p.stdout  # progress by chunks of epochs
    files = set(os.listdir(workdir))
    assert {"config.json", "metrics.jsonl", "params.npz", "summary.json", "loss_curves.png",
            "decision_boundary.png", "hidden_space.png"} <= files
    summary = json.loads((workdir / "summary.json").read_text())
    for k in ("seeds", "success_rate", "final_loss_median", "diverged", "compile_seconds",
              "train_seconds", "seed_steps_per_second"):
        assert k in summary
    assert summary["seeds"] == 16 and 0 <= summary["success_rate"] <= 1 and summary["diverged"] == 0
    assert json.loads((workdir / "config.json").read_text())["width"] == 4
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(20, 201, 20))
    assert rows[-1]["loss_median"] <= rows[0]["loss_median"]
    params = np.load(workdir / "params.npz")
    assert params["W1"].shape == (4, 2) and params["W2"].shape == (1, 4) and params["b2"].shape == (1,)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary dirs left


def test_train_digits_script_reports_test_accuracy(tmp_path):
    workdir = tmp_path / "digits"
    p = run_script("train_digits.py", "--config.seeds=1", "--config.epochs=3", "--config.width=16",
                   "--config.batch_size=32", f"--workdir={workdir}")
    assert p.returncode == 0, p.stderr
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["n_train"] + summary["n_test"] == 1797
    assert summary["test_accuracy_mean"] > 0.5  # far above chance (0.1) after three epochs
    assert {"loss_curves.png", "accuracy.png", "params.npz", "metrics.jsonl"} <= set(os.listdir(workdir))
    assert np.load(workdir / "params.npz")["W2"].shape == (10, 16)


def test_xor_study_script_writes_table_and_plot(tmp_path):
    out = tmp_path / "study"
    p = run_script("xor_study.py", "--seeds=50", "--widths=1", "--activations=relu,tanh",
                   "--config.epochs=300", f"--outdir={out}")
    assert p.returncode == 0, p.stderr
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["activation"], r["width"]) for r in rows] == [("relu", "1"), ("tanh", "1")]
    # one hidden unit cannot solve XOR: the output is a monotone function of the single w.x
    assert all(float(r["success_rate"]) == 0.0 and int(r["seeds"]) == 50 for r in rows)
    assert "| width | relu | tanh |" in (out / "study.md").read_text()
    assert (out / "success_vs_width.png").stat().st_size > 0


@pytest.mark.parametrize(
    "override, words",
    [("--config.lr=-0.5", ["config.lr", "-0.5"]), ("--config.width=0", ["config.width", "0"]),
     ("--config.activation=swish", ["config.activation", "swish"]),
     ("--config.optimizer=rmsprop", ["config.optimizer", "rmsprop"]),
     ("--config.widht=3", ["config.widht", "unknown"])],
)
def test_bad_config_exits_nonzero_naming_the_field(tmp_path, override, words):
    workdir = tmp_path / "run"
    p = run_script("train_xor.py", override, f"--workdir={workdir}")
    assert p.returncode != 0
    for w in words:
        assert w in p.stderr
    assert "Traceback" not in p.stderr
    assert not workdir.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


def test_divergence_is_reported_and_all_diverged_exits_nonzero(tmp_path):
    # lr 5 diverges for every seed of the 2-2-1 net; lr 0.1 never does
    some = run_script("train_xor.py", "--config.lrs=(0.1,5.0)", "--config.seeds=8", "--config.epochs=50",
                      "--config.log_every=10", f"--workdir={tmp_path / 'some'}")
    assert some.returncode == 0, some.stderr
    assert "warning: 8 of 16 runs diverged" in some.stdout and "lrs [0.1, 5.0]" in some.stdout
    summary = json.loads((tmp_path / "some" / "summary.json").read_text())
    assert summary["diverged"] == 8 and summary["final_loss_median"] is not None

    every = run_script("train_xor.py", "--config.lr=5.0", "--config.seeds=8", "--config.epochs=50",
                       "--config.log_every=10", f"--workdir={tmp_path / 'all'}")
    assert every.returncode != 0
    assert "training diverged: 8 of 8 runs diverged" in every.stderr
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())  # still written, nothing lost
    assert summary["diverged"] == 8 and summary["final_loss_median"] is None


def test_wilson_interval_against_known_values():
    # k = 0: the upper end is z^2 / (n + z^2) (closed form)
    z = 1.959963984540054
    lo, hi = wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(z * z / (100 + z * z), rel=1e-12)
    # a textbook value: 81 of 263 gives (0.2553, 0.3662) (Wilson 1927 / Newcombe 1998, example)
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    with pytest.raises(ValueError, match="k=5, n=3"):
        wilson_interval(5, 3)


def test_markdown_table_layout():
    rows = [{"width": w, "activation": a, "success_rate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
            for a in ("relu", "tanh") for w in (1, 2)]
    lines = markdown_table(rows).splitlines()
    assert lines[0] == "| width | relu | tanh |" and len(lines) == 4
    assert lines[2] == "| 1 | 0.5000 [0.4000, 0.6000] | 0.5000 [0.4000, 0.6000] |"
