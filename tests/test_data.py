"""Data sets: XOR and digits as before, the face images, the IDX (MNIST) parser on files written here,
synthetic PPCA data and the seeded split."""

import gzip
import struct

import jax
import numpy as np
import pytest

from lecture6 import data


def test_xor_and_digits_are_unchanged():
    X, y = data.xor()
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64 and y.shape == (1797,)
    assert X.min() == 0.0 and X.max() == 1.0 and set(np.unique(y)) == set(range(10))


def test_faces():
    X = data.load_faces()
    assert X.shape == (100, 625) and X.dtype == np.float64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert np.all(X.std(axis=1) > 0.05)  # real images, not blank patches
    np.testing.assert_array_equal(data.load_faces(10), X[:10])
    with pytest.raises(ValueError, match="got 101"):
        data.load_faces(101)


def test_train_test_split_is_seeded_and_a_partition(rng):
    X = np.arange(50.0)[:, None] * np.ones((1, 3))
    y = np.arange(50)
    a = data.train_test_split(jax.random.key(3), X, y, test_fraction=0.2)
    b = data.train_test_split(jax.random.key(3), X, y, test_fraction=0.2)
    c = data.train_test_split(jax.random.key(4), X, y, test_fraction=0.2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    assert len(a[3]) == 10 and sorted(np.concatenate([a[2], a[3]])) == list(range(50))
    np.testing.assert_array_equal(a[1][:, 0], a[3])  # rows and labels stay together


# ----------------------------------------------------------------------------------------------
# IDX files, written byte by byte here


def _idx_bytes(array, type_code, fmt):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).astype(fmt).tobytes()


def test_read_idx_round_trip(tmp_path, rng):
    images = rng.integers(0, 256, size=(5, 4, 3)).astype(np.uint8)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(images, 0x08, ">u1"))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.idx"), images)
    floats = rng.standard_normal((2, 3)).astype(np.float32)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(floats, 0x0D, ">f4"))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), floats)
    ints = rng.integers(-1000, 1000, size=7).astype(np.int32)
    (tmp_path / "i.idx.gz").write_bytes(gzip.compress(_idx_bytes(ints, 0x0C, ">i4")))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i.idx.gz"), ints)


def test_read_idx_errors(tmp_path):
    good = _idx_bytes(np.zeros((3, 2, 2), np.uint8), 0x08, ">u1")
    cases = {
        "magic": (b"\x08\x03" + good[2:], "not an IDX file .*magic number 0x0803"),
        "code": (good[:2] + b"\x07" + good[3:], "not an IDX file"),
        "short_header": (good[:6], "truncated IDX file .*header"),
        "short_data": (good[:-1], r"truncated IDX file \(27 bytes, shape \(3, 2, 2\)"),
        "tiny": (b"\x00\x00", "truncated IDX file"),
        "trailing": (good + b"\x00", "1 unexpected bytes"),
        "bad_gzip": (gzip.compress(good)[:-6], "corrupt or truncated gzip"),
    }
    for name, (raw, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ValueError, match=match) as info:
            data.read_idx(path)
        assert name in str(info.value)  # the message names the file


def test_load_mnist_from_a_directory(tmp_path, rng):
    images = rng.integers(0, 256, size=(6, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, size=6).astype(np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, 8, ">u1")))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 8, ">u1"))
    X, y = data.load_mnist(tmp_path, split="test")
    assert X.shape == (6, 784) and X.dtype == np.float64
    np.testing.assert_allclose(X, images.reshape(6, -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path, split="train")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_mnist(tmp_path, split="valid")


def test_synthetic_ppca_draws_from_its_model():
    X, model = data.synthetic_ppca(jax.random.key(0), 4000, 6, 2, sigma2=0.3)
    X2, _ = data.synthetic_ppca(jax.random.key(0), 4000, 6, 2, sigma2=0.3)
    np.testing.assert_array_equal(X, X2)
    W = np.asarray(model.W)
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), [3.0, 2.2])
    C = W @ W.T + 0.3 * np.eye(6)
    # 5 standard errors of a sample covariance entry from 4000 Gaussian points.
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / 4000)
    assert np.all(np.abs(np.cov(X, rowvar=False) - C) < 5 * se)


def test_load_images_by_name():
    X, shape = data.load_images("digits")
    assert X.shape == (1797, 64) and shape == (8, 8)
    X, shape = data.load_images("faces")
    assert X.shape == (100, 625) and shape == (25, 25)
    X, shape = data.load_images("synthetic", key=jax.random.key(0))
    assert X.shape[1] == 64 and shape == (8, 8)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load_images("cifar")
    with pytest.raises(ValueError, match="needs a directory"):
        data.load_images("mnist")
