"""The lecture's softmax network on MNIST (``configs/digits.py`` with ``dataset="mnist"``): one short run
of ``experiment.run_digits`` on the 5,000 shipped images, its workdir read back, and the test accuracy
it reports recomputed here from the saved params with NumPy on the held-out 20%."""

import json
import pathlib

import jax
import numpy as np
import pytest

from lecture6 import experiment, rundir
from lecture6.data import load_mnist_5k

DIGITS_CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "digits.py")
N, N_TEST = 5000, 1000  # the shipped images; 20% held out


def mnist_config(**kw):
    config = rundir.load_config_file(DIGITS_CONFIG)  # locked: a field the file lacks would raise here
    config.update({"dataset": "mnist", **kw})
    return config


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """One epoch, two seeds: a network that has learnt something, at the cost of one compile."""
    workdir = tmp_path_factory.mktemp("mnist") / "run"
    config = mnist_config(epochs=1, seeds=2, progress_every=0)
    lines = []
    summary = experiment.run_digits(config, str(workdir), log=lines.append)
    return config, workdir, summary, lines


def test_the_mnist_run_is_the_lectures_784_64_10_network(mnist_run):
    config, workdir, summary, lines = mnist_run
    assert lines[0] == "mnist: 4000 train, 1000 test images; network 784 -> 64 ReLU -> 10 softmax"
    params = np.load(workdir / "params.npz")
    assert {k: params[k].shape for k in params} == {"W1": (64, 784), "b1": (64,), "W2": (10, 64), "b2": (10,)}
    assert json.loads((workdir / "config.json").read_text())["dataset"] == "mnist"
    on_disk = json.loads((workdir / "summary.json").read_text())
    assert (on_disk["dataset"], on_disk["n_train"], on_disk["n_test"]) == ("mnist", N - N_TEST, N_TEST)
    assert on_disk["runs"] == 2 and len(on_disk["test_accuracy_per_run"]) == 2
    assert {"loss_curves.png", "accuracy.png", "metrics.jsonl"} <= {p.name for p in workdir.iterdir()}


def test_summary_test_accuracy_is_that_of_the_saved_network_on_the_held_out_images(mnist_run):
    """The held-out rows are the first 20% of the permutation drawn from key(seed + 1) (the split rule
    written out here, not called); the forward pass and the accuracy are NumPy, in float64."""
    config, workdir, _, _ = mnist_run
    summary = json.loads((workdir / "summary.json").read_text())
    p = {k: v.astype(np.float64) for k, v in np.load(workdir / "params.npz").items()}
    X, y = load_mnist_5k()
    test = np.asarray(jax.random.permutation(jax.random.key(config.seed + 1), N))[:N_TEST]
    h = np.maximum(X[test] @ p["W1"].T + p["b1"], 0.0)
    accuracy = np.mean(np.argmax(h @ p["W2"].T + p["b2"], axis=1) == y[test])
    # The library runs in float32: a near-tie between two logits may flip one image of 1000, no more.
    assert abs(summary["test_accuracy_best_run"] - accuracy) <= 1 / N_TEST
    assert summary["test_accuracy_per_run"][summary["best_run"]] == summary["test_accuracy_best_run"]
    assert summary["test_accuracy_mean"] == pytest.approx(np.mean(summary["test_accuracy_per_run"]))
    assert accuracy > 0.8  # one epoch already learns most of MNIST (chance is 0.1)


def test_an_unknown_dataset_is_refused_by_name(tmp_path):
    expected = r"config.dataset = 'fashion' is invalid: expected one of \['digits', 'mnist'\]"
    with pytest.raises(ValueError, match=expected):
        experiment.run_digits(mnist_config(dataset="fashion"), str(tmp_path / "run"), log=lambda s: None)
    assert not (tmp_path / "run").exists()
