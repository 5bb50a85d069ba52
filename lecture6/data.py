"""Data sets used by the lecture's demos, all available without a download at run time.

* ``load_digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), the stand-in for
  MNIST: 1797 images, 64 pixels scaled to [0, 1], labels 0-9.
* ``load_faces``: the face images that scikit-image ships (``skimage.data.lfw_subset()``, first 100
  images, 25x25 pixels in [0, 1]), the stand-in for GENKI4K.
* ``read_idx`` / ``load_mnist``: MNIST from the standard IDX files in a directory the user gives
  (optionally gzipped); nothing is downloaded.
* ``synthetic_ppca``: data drawn from a known probabilistic PCA model, for recovery checks.
* ``load_images``: one entry point by name, returning the data and the image shape for plots.
* ``train_test_split``: a seeded split (explicit ``key``).
"""

from __future__ import annotations

import gzip
import math
import os

import jax
import numpy as np

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points ``(4, 2)`` and targets ``(4,)``: g(0,0)=0, g(0,1)=1, g(1,0)=1, g(1,1)=0."""
    return XOR_X.copy(), XOR_Y.copy()


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: ``X`` float64 ``(1797, 64)`` in [0, 1] (row-major 8x8), ``y`` int ``(1797,)``."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the digits data set needs scikit-learn: pip install 'lecture6[data]'") from exc
    d = _load()
    return np.asarray(d.data, dtype=np.float64) / 16.0, np.asarray(d.target, dtype=np.int64)


def train_test_split(key, X, y=None, *, test_fraction: float = 0.2):
    """Shuffle with ``key`` and split off ``test_fraction`` of the rows.

    Returns ``(X_train, X_test)`` or, with ``y``, ``(X_train, X_test, y_train, y_test)``.
    """
    X = np.asarray(X)
    n = X.shape[0]
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(n * test_fraction)
    if n_test < 1 or n_test >= n:
        raise ValueError(f"test_fraction={test_fraction} leaves no train or no test rows out of n={n}")
    perm = np.asarray(jax.random.permutation(key, n))
    test, train = perm[:n_test], perm[n_test:]
    if y is None:
        return X[train], X[test]
    y = np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y.shape[0]}")
    return X[train], X[test], y[train], y[test]


FACE_SHAPE = (25, 25)
N_FACES = 100  # lfw_subset() holds 100 faces followed by 100 non-face patches


def load_faces(n: int = N_FACES) -> np.ndarray:
    """The first ``n`` (<= 100) images of ``skimage.data.lfw_subset()``: float64 ``(n, 625)`` in [0, 1].

    These are 25x25 grey-level faces (row-major); the subset's last 100 images are not faces.
    """
    if not 1 <= n <= N_FACES:
        raise ValueError(f"n must be in [1, {N_FACES}] (lfw_subset has {N_FACES} faces), got {n}")
    try:
        from skimage.data import lfw_subset
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the face images need scikit-image: pip install 'lecture6[data]'") from exc
    faces = np.asarray(lfw_subset()[:n], dtype=np.float64)
    return faces.reshape(n, -1)


# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (the MNIST format; gzip is detected from the content) into a NumPy array.

    Layout: two zero bytes, a type code, the number of dimensions k, then k big-endian uint32 sizes,
    then the data in big-endian row-major order. Raises ``ValueError`` naming the file on a wrong
    magic number, a truncated file or trailing bytes.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the header alone needs 4)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; expected "
                         f"0x0000TTKK with type code TT in {sorted(hex(t) for t in _IDX_DTYPES)})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the header of a "
                         f"{ndim}-D array needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, shape {shape} of {dtype.name} "
                         f"needs {expected})")
    if len(raw) > expected:
        raise ValueError(f"{path}: {len(raw) - expected} unexpected bytes after the IDX data of shape "
                         f"{shape}")
    return np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header).reshape(shape)


_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise FileNotFoundError(f"no {stem} (or {stem}.gz) in {directory!r}")


def load_mnist(path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from the standard IDX files in directory ``path``: ``X`` float64 ``(n, 784)`` in [0, 1], ``y``.

    ``split`` is ``"train"`` (train-images-idx3-ubyte, train-labels-idx1-ubyte) or ``"test"`` (t10k-...);
    gzipped copies (``.gz``) are read as well.
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(_MNIST_FILES)}, got {split!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"MNIST path {path!r} is not a directory holding the IDX files")
    images = read_idx(_find(path, _MNIST_FILES[split][0]))
    labels = read_idx(_find(path, _MNIST_FILES[split][1]))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST files in {path!r} disagree: images {images.shape}, labels {labels.shape}")
    X = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return X, labels.astype(np.int64)


def synthetic_ppca(key, n: int, d: int = 20, q: int = 3, *, sigma2: float = 0.1):
    """``n`` points drawn from a random, known PPCA model; returns ``(X (n, d) float64, model)``.

    The model has W with orthogonal columns whose norms are evenly spaced from 3.0 down to 2.2
    (well-separated from the noise),
    a random offset b and noise variance ``sigma2``.
    """
    from lecture6.ppca import PPCA, sample

    if not 1 <= q < d:
        raise ValueError(f"need 1 <= q < d, got q={q}, d={d}")
    if not sigma2 > 0:
        raise ValueError(f"sigma2 must be positive, got {sigma2}")
    k_W, k_b, k_x = jax.random.split(key, 3)
    Q, _ = np.linalg.qr(np.asarray(jax.random.normal(k_W, (d, q), dtype=np.float64)))
    norms = np.linspace(3.0, 2.2, q) if q > 1 else np.array([3.0])
    W = Q * norms[None, :]
    b = np.asarray(jax.random.normal(k_b, (d,), dtype=np.float64))
    model = PPCA(jax.numpy.asarray(W), jax.numpy.asarray(b), jax.numpy.asarray(float(sigma2)))
    return np.asarray(sample(model, k_x, n), dtype=np.float64), model


DATASETS = ("digits", "faces", "mnist", "synthetic")


def load_images(name: str, *, key=None, mnist_path: str = "") -> tuple[np.ndarray, tuple[int, int]]:
    """Data set ``name`` (one of ``DATASETS``) as ``(X (n, d), image_shape)`` for the PPCA demos.

    ``synthetic`` needs ``key`` (2000 points of a known 64-dimensional PPCA with q=5, shown as 8x8);
    ``mnist`` needs ``mnist_path``, a directory with the IDX files.
    """
    if name == "digits":
        return load_digits()[0], (8, 8)
    if name == "faces":
        return load_faces(), FACE_SHAPE
    if name == "mnist":
        if not mnist_path:
            raise ValueError("dataset 'mnist' needs a directory with the IDX files (mnist_path)")
        return load_mnist(mnist_path)[0], (28, 28)
    if name == "synthetic":
        if key is None:
            raise ValueError("dataset 'synthetic' needs a key")
        return synthetic_ppca(key, 2000, 64, 5)[0], (8, 8)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
