"""Data sets used by the lecture's demos, all available without a download at run time.

* ``load_digits``: scikit-learn's 8x8 handwritten digits (ships with scikit-learn), the stand-in for
  MNIST: 1797 images, 64 pixels scaled to [0, 1], labels 0-9.
* ``train_test_split``: a seeded split (explicit ``key``).
"""

from __future__ import annotations

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
    n_test = int(round(n * test_fraction))
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
