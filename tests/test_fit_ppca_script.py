"""Smoke test of scripts/fit_ppca.py on a tiny config, outputs read back; the latent-variable figures
written directly; config and atomic writes; files larger than memory (npy, idx) fitted chunk by chunk
against the in-memory fit of the same rows, and their bad inputs."""

import json
import math
import os
import pathlib
import struct

import jax
import launches
import matplotlib.image
import numpy as np
import pytest

from lecture6 import data, experiment, ppca, ppca_plots, rundir
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


def _script(*args):
    return lambda out: launches.python(str(SCRIPT), "--config", str(ROOT / "configs" / "ppca.py"),
                                       *[a.format(out=out) for a in args])


# Launched when the tests are collected (tests/launches.py); each test reads its launch's result.
# em_iters is left to the data set's default (300 for digits); the rest is kept small.
_DIGITS_ARGS = ("--config.dataset=digits", "--config.q=3", "--config.gradient_steps=500", "--config.q_grid=(1,2,3,5)",
                "--config.n_samples=8", "--workdir={out}/runs/ppca")
DIGITS = launches.launch("fit_ppca_digits", _script(*_DIGITS_ARGS))
DIGITS_AGAIN = launches.launch("fit_ppca_digits_again", _script(*_DIGITS_ARGS), env=launches.fresh_cache_env())
DIGITS_LAUNCHED = launches.launch("fit_ppca_digits_2x2", lambda out: launches.python(
    "-m", "lecture6.launch", "--processes", "2", "--devices-per-process", "2", "--timeout", "600", "--",
    *_script(*_DIGITS_ARGS)(out)[1:]), timeout=660)
UNKNOWN_FIELD = launches.launch("fit_ppca_unknown_field", _script("--config.qq=3", "--workdir={out}/w"))
MISSING_FILE = launches.launch("fit_ppca_missing_file", _script(
    "--config.dataset=npy", "--config.path={out}/missing.npy", "--workdir={out}/w"))


def test_fit_ppca_writes_metrics_and_plots():
    workdir = pathlib.Path(DIGITS.out) / "runs" / "ppca"
    proc = DIGITS.result()
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
        assert m["fit_seconds"] > 0 and 0 <= m["compile_seconds"] <= m["fit_seconds"]
        # The closed form is the maximum: no route beats it on the training data.
        assert m["train_loglik"] <= metrics["closed_form"]["train_loglik"] + 1e-9
        assert m["train_loglik"] > metrics["closed_form"]["train_loglik"] - 0.05
        # bits/dim of 17-level pixels: (d ln 17 - loglik) / (d ln 2)
        assert m["test_bits_per_dim"] == pytest.approx((64 * math.log(17) - m["test_loglik"]) / (64 * math.log(2)))
    assert metrics["em"]["compile_seconds"] > 0  # a new process compiles its EM loop
    assert 0 < metrics["compile_seconds"] < metrics["seconds"]
    assert "s of it compiling)" in proc.stdout
    assert [r["q"] for r in metrics["heldout"]] == [1, 2, 3, 5]
    best = max(metrics["heldout"], key=lambda r: r["test_loglik"])
    assert metrics["best_q_heldout"] == best["q"] and metrics["best_heldout_bits_per_dim"] == best["test_bits_per_dim"]
    assert metrics["heldout"][2]["test_loglik"] == pytest.approx(metrics["closed_form"]["test_loglik"])
    for name in PNGS:
        _check_png(workdir / name)
    # Nothing but the finished workdir is left behind.
    assert sorted(os.listdir(workdir.parent)) == ["ppca"]


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


def test_a_rerun_of_the_script_writes_identical_metrics():
    """The same command twice, each in its own process compiling its own programs (the second with an empty
    compilation cache): metrics.json equal to the last bit, timings aside."""
    runs = []
    for launch in (DIGITS, DIGITS_AGAIN):
        assert launch.result().returncode == 0, launch.result().stderr
        text = (pathlib.Path(launch.out) / "runs" / "ppca" / "metrics.json").read_text()
        runs.append(json.loads(text))
    assert launches.without_timings(runs[0]) == launches.without_timings(runs[1])
    assert runs[0]["em"]["test_loglik"] == runs[1]["em"]["test_loglik"]  # floats compared exactly, not rounded


def test_under_the_launcher_the_script_writes_the_same_metrics():
    """2 processes x 2 devices under ``python -m lecture6.launch``: process 0's workdir, the same numbers."""
    for p in (DIGITS.result(), DIGITS_LAUNCHED.result()):  # the one-process run first: compared below
        assert p.returncode == 0, p.stdout + p.stderr
    workdir = pathlib.Path(DIGITS_LAUNCHED.out) / "runs" / "ppca"
    assert os.listdir(workdir.parent) == ["ppca"]
    one = json.loads((pathlib.Path(DIGITS.out) / "runs" / "ppca" / "metrics.json").read_text())
    assert launches.without_timings(json.loads((workdir / "metrics.json").read_text())) == launches.without_timings(one)


def test_unknown_override_is_rejected():
    proc = UNKNOWN_FIELD.result()
    assert proc.returncode != 0
    assert "qq" in proc.stderr
    assert not os.path.exists(os.path.join(UNKNOWN_FIELD.out, "w"))


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


# --- Files larger than memory: --config.dataset=npy / idx, read chunk by chunk -------------------------

SEED, Q, EM_ITERS, QS, ROWS = 3, 3, 40, (1, 3, 6), 64  # 64-row chunks: 500 rows give a short last chunk


def _ppca_config(**fields):
    config = rundir.load_config_file(str(ROOT / "configs" / "ppca.py"))
    config.update({"seed": SEED, "q": Q, "em_iters": EM_ITERS, "q_grid": QS, "rows_per_chunk": ROWS,
                   "n_samples": 8, **fields})
    return config


def _keys():
    """run_ppca's keys, split as documented: (data, split, fit, sample, noise); EM gets split(fit)[0]."""
    k_data, k_split, k_fit, k_sample, k_noise = jax.random.split(jax.random.key(SEED), 5)
    return k_split, jax.random.split(k_fit)[0], k_noise


def _low_rank(rng, n, d, dtype):
    return (1.0 + rng.standard_normal((n, 4)) @ rng.standard_normal((4, d))
            + 0.3 * rng.standard_normal((n, d))).astype(dtype)


@pytest.fixture(scope="module")
def npy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("npy")
    X = _low_rank(np.random.default_rng(0), 500, 20, np.float32)
    np.save(tmp / "X.npy", X)
    lines = []
    metrics = experiment.run_ppca(_ppca_config(dataset="npy", path=str(tmp / "X.npy")), str(tmp / "run"),
                                  log=lines.append)
    return X, tmp / "run", metrics, lines


def _assert_fit_equals_in_memory(metrics, X_train, X_test, k_em):
    """The chunked route's numbers against the in-memory fits of the same rows (float64)."""
    assert (metrics["n_train"], metrics["n_test"]) == (len(X_train), len(X_test))
    ref = ppca.fit_closed_form(X_train, Q)
    em = ppca.fit_em(X_train, Q, key=k_em, iters=EM_ITERS, log_every=max(EM_ITERS // 5, 1))
    assert metrics["sigma2"] == pytest.approx(float(ref.sigma2), rel=1e-10)
    for method, model, tol in (("closed_form", ref, 1e-10), ("em", em, 1e-8)):
        assert metrics[method]["sigma2"] == pytest.approx(float(model.sigma2), rel=tol)
        for part, Xp in (("train_loglik", X_train), ("test_loglik", X_test)):
            assert abs(metrics[method][part] - float(ppca.log_likelihood(model, Xp).mean())) < tol, (method, part)
    heldout = ppca.heldout_log_likelihood(X_train, X_test, list(QS))
    np.testing.assert_allclose([r["test_loglik"] for r in metrics["heldout"]], heldout, rtol=1e-10)
    assert [r["q"] for r in metrics["heldout"]] == list(QS)


def test_npy_file_fitted_in_chunks_equals_the_in_memory_fit(npy_run):
    X, workdir, metrics, lines = npy_run
    k_split, k_em, _ = _keys()
    # The train rows by train_test_split's rule (tests/test_data_chunks.py checks the chunk readers keep it).
    X_train, X_test = data.train_test_split(k_split, X.astype(np.float64), test_fraction=0.2)
    _assert_fit_equals_in_memory(metrics, X_train, X_test, k_em)
    assert "gradient" not in metrics and metrics["levels"] is None and metrics["dequantized"] is False
    assert (metrics["path"], metrics["rows_per_chunk"]) == (str(workdir.parent / "X.npy"), ROWS)
    assert json.loads((workdir / "metrics.json").read_text()) == metrics
    config = json.loads((workdir / "config.json").read_text())
    assert (config["dataset"], config["em_iters"], config["gradient_steps"]) == ("npy", EM_ITERS, None)
    assert any("400 train, 100 test rows of d=20 (float32), read 64 rows at a time" in s for s in lines)
    # d = 20 is no image: only the figures that need none.
    assert sorted(os.listdir(workdir)) == ["config.json", "heldout_vs_q.png", "metrics.json", "spectrum.png"]
    for name in ("heldout_vs_q.png", "spectrum.png"):
        _check_png(workdir / name)


def _idx(array, type_code=0x08, fmt=">u1"):
    """IDX bytes from the format's definition (magic 0x0000TTKK, big-endian sizes, the data)."""
    return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(fmt).tobytes()


def test_an_idx_pair_is_read_dequantized_and_fitted(tmp_path, rng):
    # 90 images of 4 x 5 byte pixels (d = 20) and their labels, written by hand as MNIST names them.
    images = np.clip(np.rint(_low_rank(rng, 90, 20, np.float64) * 40 + 60), 0, 255).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(images.reshape(90, 4, 5)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(rng.integers(0, 10, 90).astype(np.uint8)))
    metrics = experiment.run_ppca(_ppca_config(dataset="idx", path=str(tmp_path), rows_per_chunk=16),
                                  str(tmp_path / "run"), log=lambda s: None)
    assert (metrics["levels"], metrics["dequantized"], metrics["d"]) == (256, True, 20)
    # Dequantized as documented: file row r is (k + u) / 256, u ~ U[0, 1) from fold_in(noise key, r).
    k_split, k_em, k_noise = _keys()
    u = np.stack([np.asarray(jax.random.uniform(jax.random.fold_in(k_noise, r), (20,), dtype=np.float64))
                  for r in range(90)])
    X = (images.astype(np.float64) + u) / 256.0
    X_train, X_test = data.train_test_split(k_split, X, test_fraction=0.2)
    _assert_fit_equals_in_memory(metrics, X_train, X_test, k_em)
    # 4 x 5 images: every figure but the labelled latent space (it needs all held-out rows in memory).
    assert {"samples.png", "directions.png", "reconstructions.png", "latent_traversal.png"} <= set(
        os.listdir(tmp_path / "run")) and "latent_space.png" not in os.listdir(tmp_path / "run")


def _chunk_of(mask_part, row, rows_per_chunk):
    """(chunk index, row in chunk) of file row ``row`` among the rows selected by ``mask_part``, read in
    windows of ``rows_per_chunk`` file rows, windows without a selected row skipped."""
    starts = range(0, len(mask_part), rows_per_chunk)
    nonempty = [s for s in starts if mask_part[s:s + rows_per_chunk].any()]
    window = row // rows_per_chunk * rows_per_chunk
    return nonempty.index(window), int(mask_part[window:row].sum())


def test_bad_files_are_named(tmp_path, rng):
    def fails(match, **fields):
        with pytest.raises(ValueError, match=match):
            experiment.run_ppca(_ppca_config(**fields), str(tmp_path / "run"), log=lambda s: None)
        assert not (tmp_path / "run").exists()

    fails(r"config\.path = '': dataset 'npy' reads its rows from a file", dataset="npy")
    fails(r"config\.path = '.*nowhere\.npy': no such file or directory", dataset="npy",
          path=str(tmp_path / "nowhere.npy"))
    (tmp_path / "text.npy").write_text("1,2,3\n")
    fails(r"text\.npy: not a \.npy file", dataset="npy", path=str(tmp_path / "text.npy"))
    np.save(tmp_path / "vector.npy", np.zeros(30))
    fails(r"vector\.npy: the array must have rows, shape \(n, d, \.\.\.\); got shape \(30,\)", dataset="npy",
          path=str(tmp_path / "vector.npy"))
    np.save(tmp_path / "complex.npy", np.zeros((30, 4), np.complex128))
    fails(r"complex\.npy: dtype complex128 is not a real number type", dataset="npy",
          path=str(tmp_path / "complex.npy"))
    fails(r"config\.rows_per_chunk = 0 is invalid", dataset="npy", path=str(tmp_path / "complex.npy"),
          rows_per_chunk=0)
    fails(r"config\.path = .*: no train-images-idx3-ubyte \(or train-images-idx3-ubyte\.gz\)", dataset="idx",
          path=str(tmp_path))
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    fails(r"bad\.idx: not an IDX file \(magic number 0x01020801", dataset="idx", path=str(tmp_path / "bad.idx"))
    fails(r"config\.dataset = 'npz' is unknown; expected one of \[.*'idx'.*'npy'", dataset="npz")
    # A NaN in a training row: named by its file row, its chunk of the training rows and its column.
    X = _low_rank(rng, 500, 20, np.float64)
    k_split, _, _ = _keys()
    train = ~data.heldout_mask(k_split, 500, test_fraction=0.2)
    row = int(np.flatnonzero(train[300:])[0]) + 300
    X[row, 7] = np.nan
    np.save(tmp_path / "nan.npy", X)
    chunk, i = _chunk_of(train, row, ROWS)
    fails(rf"nan\.npy: row {row} holds nan in column 7 \(chunk {chunk} of the train rows, its row {i}\)",
          dataset="npy", path=str(tmp_path / "nan.npy"))


def test_the_script_shows_a_bad_path_in_one_line():
    proc = MISSING_FILE.result()
    missing = os.path.join(MISSING_FILE.out, "missing.npy")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"error: config.path = '{missing}': no such file or directory"
    assert "Traceback" not in proc.stderr and not os.path.exists(os.path.join(MISSING_FILE.out, "w"))
