"""Small references the audit rows share, written with NumPy only (no lecture6 code, no JAX)."""

from __future__ import annotations

import numpy as np
import scipy.stats


def max_abs_diff(a, b) -> float:
    """``max |a - b|``; ``inf`` when the shapes differ or a value is not finite (a FAIL, never a crash)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    d = np.abs(a - b)
    return float(np.max(d, initial=0.0)) if np.all(np.isfinite(d)) else float("inf")


def central_differences(f, x, h: float) -> np.ndarray:
    """The 2-D Jacobian ``(f.size, x.size)`` of ``f`` at ``x`` by central differences, column ``j`` = input
    ``j`` of ``vec[x]`` (row-major), row ``i`` = output ``i`` of ``vec[f]``: the lecture's layout, written
    out entry by entry."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        plus = np.asarray(f((x.reshape(-1) + e).reshape(x.shape)), dtype=np.float64).reshape(-1)
        minus = np.asarray(f((x.reshape(-1) - e).reshape(x.shape)), dtype=np.float64).reshape(-1)
        cols.append((plus - minus) / (2 * h))
    return np.stack(cols, axis=1)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (SciPy)."""
    ci = scipy.stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
