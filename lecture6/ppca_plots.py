"""Figures for the probabilistic PCA demo (matplotlib, Agg backend, files only).

Each function takes arrays and a path and writes one PNG:
samples from the model (the slide's "generate novel examples"), the mean and principal directions as
images, the eigenvalue spectrum with sigma2 marked, originals beside their posterior-mean
reconstructions, and the held-out log-likelihood against q.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # imported after matplotlib.use("Agg") on purpose
import numpy as np


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)


def _grid(axes_images, shape, *, cmap="gray", vmin=None, vmax=None, titles=None):
    for i, (ax, img) in enumerate(axes_images):
        ax.imshow(np.asarray(img).reshape(shape), cmap=cmap, vmin=vmin, vmax=vmax,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)


def image_grid(images, shape, path, *, title: str, cols: int = 8) -> None:
    """``images`` ``(k, d)`` drawn as ``shape`` images on a grid of ``cols`` columns."""
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    lo, hi = float(np.min(images)), float(np.max(images))
    _grid(zip(axes.flat, images), shape, vmin=lo, vmax=hi)
    for ax in list(axes.flat)[len(images):]:
        ax.axis("off")
    fig.suptitle(title)
    _save(fig, path)


def mean_and_directions(b, W, shape, path, *, k: int = 7) -> None:
    """The offset ``b`` ``(d,)`` and the first ``k`` columns of ``W`` ``(d, q)`` as images."""
    W = np.asarray(W)
    k = min(k, W.shape[1])
    fig, axes = plt.subplots(1, k + 1, figsize=(1.4 * (k + 1), 1.8), squeeze=False)
    _grid([(axes[0, 0], np.asarray(b))], shape, titles=["mean b"])
    lim = float(np.max(np.abs(W[:, :k])))
    _grid(zip(axes[0, 1:], W[:, :k].T), shape, cmap="RdBu_r", vmin=-lim, vmax=lim,
          titles=[f"W[:, {j}]" for j in range(k)])
    fig.suptitle("mean and principal directions")
    _save(fig, path)


def spectrum(eigvals, q: int, sigma2: float, path) -> None:
    """Eigenvalues of the sample covariance (log scale), the cut at ``q`` and the fitted ``sigma2``."""
    lam = np.asarray(eigvals, dtype=np.float64)
    # Zero-variance directions (constant pixels) would stretch the log axis over hundreds of
    # decades; draw everything below 1e-8 x the largest eigenvalue at that floor instead.
    floor = 1e-8 * float(lam[0]) if lam[0] > 0 else 1e-300
    n_floored = int(np.sum(lam < floor))
    lam = np.maximum(lam, floor)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    idx = np.arange(1, len(lam) + 1)
    if n_floored:
        ax.set_title(f"{n_floored} eigenvalues ~ 0 (constant features) drawn at {floor:.1g}", fontsize=8)
    ax.semilogy(idx[:q], lam[:q], "o-", ms=3, label=f"kept (q={q})")
    ax.semilogy(idx[q:], lam[q:], "o-", ms=3, color="0.6", label="discarded")
    ax.axhline(sigma2, color="C3", ls="--", label=f"sigma2 = {sigma2:.3g} (mean discarded)")
    ax.set_xlabel("index")
    ax.set_ylabel("eigenvalue of the (1/n) covariance")
    ax.legend(fontsize=8)
    _save(fig, path)


def reconstructions(X, X_hat, shape, path, *, k: int = 8) -> None:
    """Originals (top row) above their posterior-mean reconstructions W E[h|x] + b (bottom row)."""
    k = min(k, len(X))
    fig, axes = plt.subplots(2, k, figsize=(1.2 * k, 2.8), squeeze=False)
    lo, hi = float(np.min(X[:k])), float(np.max(X[:k]))
    _grid(zip(axes[0], np.asarray(X[:k])), shape, vmin=lo, vmax=hi)
    _grid(zip(axes[1], np.asarray(X_hat[:k])), shape, vmin=lo, vmax=hi)
    axes[0, 0].set_ylabel("original", fontsize=8)
    axes[1, 0].set_ylabel("posterior\nmean", fontsize=8)
    fig.suptitle("held-out images and their reconstructions")
    _save(fig, path)


def heldout_curve(qs, scores, q: int, path) -> None:
    """Average held-out log-likelihood (nats/sample) against q, the chosen q marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(qs, scores, "o-", ms=3)
    best = qs[int(np.argmax(scores))]
    ax.axvline(best, color="C2", ls=":", label=f"best held-out q = {best}")
    ax.axvline(q, color="C3", ls="--", label=f"fitted q = {q}")
    ax.set_xlabel("q (latent dimensions)")
    ax.set_ylabel("held-out log-likelihood (nats/sample)")
    ax.legend(fontsize=8)
    _save(fig, path)
