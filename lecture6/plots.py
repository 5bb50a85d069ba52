"""Figures for training runs: loss curves over seeds, a decision boundary, the hidden-space picture,
success rate against width, and accuracy curves. Matplotlib with the Agg backend (files only).

Every function takes plain arrays, writes one PNG to ``path`` and returns the path.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from lecture6.activations import get_activation
from lecture6.mlp import predict


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(rows: list[dict], path, *, title: str = "training loss over seeds", log: bool = True):
    """Median loss and the 25-75% and 10-90% bands over seeds, from :func:`lecture6.runs.aggregate_history` rows."""
    rows = [r for r in rows if r.get("loss_median") is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        e = np.array([r["epoch"] for r in rows])
        get = lambda k: np.array([r[k] for r in rows])
        ax.fill_between(e, get("loss_q10"), get("loss_q90"), alpha=0.2, color="C0", label="10-90%")
        ax.fill_between(e, get("loss_q25"), get("loss_q75"), alpha=0.35, color="C0", label="25-75%")
        ax.plot(e, get("loss_median"), color="C0", label="median")
        if log and np.all(get("loss_q10") > 0):
            ax.set_yscale("log")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "every seed diverged", ha="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return _save(fig, path)


def decision_boundary(params, X, y, path, *, activation: str = "relu", title: str = ""):
    """The network's output ``g(x)`` over the input plane, its 0.5 contour, and the data points."""
    X = np.asarray(X)
    y = np.asarray(y).reshape(-1)
    lo, hi = X.min(0) - 0.5, X.max(0) + 0.5
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([g0.ravel(), g1.ravel()], axis=1).astype(X.dtype)
    out = np.asarray(predict(params, grid, activation=activation))[:, 0].reshape(g0.shape)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    cs = ax.contourf(g0, g1, out, levels=np.linspace(-0.5, 1.5, 21), cmap="RdBu_r", extend="both")
    ax.contour(g0, g1, out, levels=[0.5], colors="k", linewidths=1.5)
    fig.colorbar(cs, ax=ax, label="g(x)")
    for cls, marker in ((0, "o"), (1, "s")):
        m = y == cls
        ax.scatter(X[m, 0], X[m, 1], c="white", edgecolors="k", marker=marker, s=90, label=f"y = {cls}")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(title or "decision boundary g(x) = 0.5")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def hidden_space(params, X, y, path, *, activation: str = "relu"):
    """The slide's figure: the points in the input space, after ``W1 x + b1`` and after ``sigma``.

    With more than two hidden units the first two are drawn.
    """
    X = np.asarray(X)
    y = np.asarray(y).reshape(-1)
    W1, b1 = np.asarray(params[0]["W"]), np.asarray(params[0]["b"])
    sigma, _ = get_activation(activation)
    z = (X @ W1.T + b1[None, :]).astype(W1.dtype)
    h = np.asarray(sigma(z))
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    panels = [(X, "input space x", ("x1", "x2")), (z, "pre-activation z = W1 x + b1", ("z1", "z2")),
              (h, f"hidden space h = {activation}(z)", ("h1", "h2"))]
    for ax, (P, title, (lx, ly)) in zip(axes, panels):
        P2 = P[:, :2] if P.shape[1] >= 2 else np.concatenate([P, np.zeros_like(P)], axis=1)
        for cls, marker, color in ((0, "o", "C3"), (1, "s", "C0")):
            m = y == cls
            ax.scatter(P2[m, 0], P2[m, 1], marker=marker, c=color, s=90, label=f"y = {cls}", alpha=0.8)
        for i, (a, b) in enumerate(P2):
            ax.annotate(f"{X[i, 0]:.0f}{X[i, 1]:.0f}", (a, b), textcoords="offset points", xytext=(6, 6),
                        fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(lx)
        ax.set_ylabel(ly)
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def success_vs_width(rows: list[dict], path, *, title: str = "XOR solved by gradient descent"):
    """Success rate with its 95% interval against hidden width, one line per activation.

    ``rows``: dicts with ``width``, ``activation``, ``success_rate``, ``ci_low``, ``ci_high``.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, act in enumerate(sorted({r["activation"] for r in rows})):
        rs = sorted((r for r in rows if r["activation"] == act), key=lambda r: r["width"])
        w = np.array([r["width"] for r in rs])
        p = np.array([r["success_rate"] for r in rs])
        lo = p - np.array([r["ci_low"] for r in rs])
        hi = np.array([r["ci_high"] for r in rs]) - p
        ax.errorbar(w, p, yerr=[lo, hi], marker="o", capsize=3, label=act, color=f"C{i}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r["width"] for r in rows}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("hidden units")
    ax.set_ylabel("fraction of seeds that solve XOR")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def accuracy_curves(rows: list[dict], path, *, test_accuracy: float | None = None,
                    title: str = "accuracy (mean over seeds)"):
    """Mean training accuracy over seeds per logged epoch (and the final test accuracy as a line)."""
    rows = [r for r in rows if r.get("accuracy_mean") is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        ax.plot([r["epoch"] for r in rows], [r["accuracy_mean"] for r in rows], label="train (epoch mean)")
    if test_accuracy is not None:
        ax.axhline(test_accuracy, color="C1", ls="--", label=f"test, final: {test_accuracy:.3f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)
