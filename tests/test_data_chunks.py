"""Row chunks of files larger than memory: a .npy file and MNIST IDX files (plain and gzipped) read
chunk by chunk, split by the same rule as data.train_test_split, and fed to PPCA's chunked fits."""

import gzip
import struct

import jax
import numpy as np
import pytest

from lecture6 import data, ppca


def _idx_bytes(array, type_code, fmt):
    """An IDX file written by hand from the format's definition (independent of lecture6.data)."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(fmt).tobytes()


def _rows(chunks):
    return np.concatenate(list(chunks))


def _sorted_rows(X):
    return X[np.lexsort(X.T[::-1])]


def test_npy_chunks_split_exactly_as_train_test_split(tmp_path, rng):
    X = rng.standard_normal((103, 5)).astype(np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    key = jax.random.key(3)
    train, test = data.train_test_split(key, X, test_fraction=0.25)
    mask = data.heldout_mask(key, len(X), test_fraction=0.25)
    # The same rows (in file order rather than shuffled), for chunk sizes that do and do not divide n.
    for rows in (10, 103, 7):
        got_train = _rows(data.npy_chunks(path, rows, key=key, part="train", test_fraction=0.25))
        got_test = _rows(data.npy_chunks(path, rows, key=key, part="test", test_fraction=0.25))
        np.testing.assert_array_equal(got_test, X[mask])
        np.testing.assert_array_equal(got_train, X[~mask])
        np.testing.assert_array_equal(_sorted_rows(got_test), _sorted_rows(test))
        np.testing.assert_array_equal(_sorted_rows(got_train), _sorted_rows(train))
    chunks = list(data.npy_chunks(path, 10))
    assert [len(c) for c in chunks] == [10] * 10 + [3] and chunks[0].dtype == np.float32
    assert not isinstance(chunks[0], np.memmap)  # copies: no map outlives its chunk
    np.testing.assert_array_equal(_rows(chunks), X)
    assert _rows(data.npy_chunks(path, 50, dtype=np.float64)).dtype == np.float64
    # Trailing axes are flattened into the row: (n, 2, 3) images give rows of 6 values.
    np.save(tmp_path / "img.npy", X[:, :4].reshape(103, 2, 2))
    np.testing.assert_array_equal(_rows(data.npy_chunks(tmp_path / "img.npy", 9)), X[:, :4])


def test_npy_chunks_errors(tmp_path, rng):
    X = rng.standard_normal((20, 3))
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    with pytest.raises(ValueError, match="Fortran order"):
        data.npy_chunks(tmp_path / "f.npy", 5)
    np.save(tmp_path / "v.npy", X[:, 0])
    with pytest.raises(ValueError, match=r"must have rows.*shape \(20,\)"):
        data.npy_chunks(tmp_path / "v.npy", 5)
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match="part='train' needs the split key"):
        data.npy_chunks(tmp_path / "x.npy", 5, part="train")
    with pytest.raises(ValueError, match="part must be one of"):
        data.npy_chunks(tmp_path / "x.npy", 5, part="heldout", key=jax.random.key(0))
    with pytest.raises(ValueError, match="rows_per_chunk must be a positive integer, got 0"):
        data.npy_chunks(tmp_path / "x.npy", 0)
    with pytest.raises(ValueError, match="leaves no train or no test rows"):
        data.npy_chunks(tmp_path / "x.npy", 5, part="test", key=jax.random.key(0), test_fraction=0.01)


def test_mnist_chunks_equal_load_mnist(tmp_path, rng):
    images = rng.integers(0, 256, size=(37, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=37).astype(np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images, 8, ">u1"))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 8, ">u1"))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images[:11], 8, ">u1")))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:11], 8, ">u1"))
    key = jax.random.key(5)
    for split in ("train", "test"):  # memory-mapped, gzip-streamed
        X, _ = data.load_mnist(tmp_path, split)
        np.testing.assert_array_equal(_rows(data.mnist_chunks(tmp_path, split, 4)), X)
        mask = data.heldout_mask(key, len(X))
        test = _rows(data.mnist_chunks(tmp_path, split, 5, key=key, part="test"))
        np.testing.assert_array_equal(test, X[mask])
        np.testing.assert_array_equal(_sorted_rows(test), _sorted_rows(data.train_test_split(key, X)[1]))
    floats = rng.standard_normal((6, 3)).astype(np.float32)  # another IDX type, no scaling
    (tmp_path / "f.idx").write_bytes(_idx_bytes(floats, 0x0D, ">f4"))
    np.testing.assert_array_equal(_rows(data.idx_chunks(tmp_path / "f.idx", 4)), floats.astype(np.float64))


def test_idx_chunks_errors_name_the_file(tmp_path):
    good = _idx_bytes(np.zeros((3, 2, 2), np.uint8), 0x08, ">u1")
    cases = {"short.idx": good[:-1], "long.idx": good + b"\0", "magic.idx": b"\1" + good[1:]}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=f"{name}: .*(truncated|unexpected bytes|not an IDX)"):
            data.idx_chunks(tmp_path / name, 2)
    # A gzipped file's length is known only at its end: the error comes with the last chunk.
    (tmp_path / "short.idx.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(ValueError, match=r"short.idx.gz: truncated IDX file \(the data end inside row 2 of 3\)"):
        list(data.idx_chunks(tmp_path / "short.idx.gz", 2))
    (tmp_path / "long.idx.gz").write_bytes(gzip.compress(good + b"\0"))
    with pytest.raises(ValueError, match="long.idx.gz: unexpected bytes after the IDX data"):
        list(data.idx_chunks(tmp_path / "long.idx.gz", 2))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        data.mnist_chunks(tmp_path / "nowhere")


def test_chunked_fit_of_a_file_equals_the_in_memory_fit(tmp_path, rng):
    """fit_all_chunks on a .npy file read in chunks: the same closed form, training and held-out
    log-likelihoods and held-out curve as the in-memory route on train_test_split's rows."""
    X = 2.0 + rng.standard_normal((400, 6)) @ np.diag([3.0, 2.0, 1.0, 0.4, 0.3, 0.2])
    np.save(tmp_path / "X.npy", X)
    key = jax.random.key(9)
    X_train, X_test = data.train_test_split(key, X)
    out = ppca.fit_all_chunks(lambda: data.npy_chunks(tmp_path / "X.npy", 64, key=key, part="train"),
                              lambda: data.npy_chunks(tmp_path / "X.npy", 64, key=key, part="test"),
                              2, key=jax.random.key(1), em_iters=300, qs=(1, 2, 3), log=lambda _: None)
    cf = ppca.fit_closed_form(X_train, 2)
    for a, b in zip(out["models"]["closed_form"], cf):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    metrics = out["metrics"]
    assert (metrics["n_train"], metrics["n_test"], metrics["d"]) == (320, 80, 6)
    for method in ("closed_form", "em"):
        for part, Xp in (("train_loglik", X_train), ("test_loglik", X_test)):
            ref = float(ppca.log_likelihood(out["models"][method], Xp).mean())
            assert abs(metrics[method][part] - ref) < 1e-10
    assert abs(metrics["em"]["train_loglik"] - metrics["closed_form"]["train_loglik"]) < 1e-8
    np.testing.assert_allclose(out["heldout"], ppca.heldout_log_likelihood(X_train, X_test, [1, 2, 3]),
                               rtol=1e-10)
    assert out["qs"] == [1, 2, 3] and metrics["best_q_heldout"] in (1, 2, 3)
