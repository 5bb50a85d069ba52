"""Runs that write a workdir: the entry points behind ``scripts/train_xor.py``,
``scripts/train_digits.py`` and ``scripts/fit_ppca.py`` (each script is flags, then one call here).

A training run builds its program with :func:`lecture6.runs.make_train_runs` (the config's range checks
run there, once, before anything is written), compiles it ahead of time, trains, and writes everything
into a temporary directory that takes the workdir's place only when complete
(:func:`lecture6.rundir.atomic_workdir`):

* ``config.json`` -- the config as run; ``metrics.jsonl`` -- one line per logged epoch, aggregates over
  the seeds that did not diverge (:func:`lecture6.runs.aggregate_history`);
* ``params.npz`` -- the best seed's params (``W1, b1, W2, b2, ...``);
* ``summary.json`` -- seeds, success rate, final loss median, divergence, compile and train seconds,
  seed-steps per second (and test accuracy for the digits);
* PNG plots (:mod:`lecture6.plots`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import data, plots, ppca, ppca_plots
from lecture6.data import train_test_split, xor
from lecture6.mlp import predict
from lecture6.rundir import atomic_workdir, write_json
from lecture6.runs import TrainingDiverged, aggregate_history, compile_and_run, diverged_report, make_train_runs

__all__ = ["run_xor", "run_digits", "run_ppca", "atomic_workdir"]


def _config_dict(config) -> dict:
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _best_params(result, i: int) -> dict:
    out = {}
    for k, layer in enumerate(result.params, start=1):
        out[f"W{k}"] = np.asarray(layer["W"][i])
        out[f"b{k}"] = np.asarray(layer["b"][i])
    return out


def _train(config, data, log: Callable[[str], None]):
    """Build, compile and run every run of ``config``; returns ``(result, timings)``."""
    every = config.progress_every
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ValueError(f"config.progress_every = {every!r} is invalid: expected an integer >= 0")
    if config.dtype == "float64":
        jax.config.update("jax_enable_x64", True)  # before anything is traced

    def progress(epoch, mean_loss, n_finite, solved, mean_acc):
        # "solved" (every training point right) is the XOR notion; a classifier reports its accuracy.
        tail = f"solved {solved:.3f}" if config.loss == "mse" else f"train accuracy {mean_acc:.4f}"
        log(f"epoch {epoch:6d}/{config.epochs}  mean loss {mean_loss:.5f}  finite runs {n_finite}  {tail}")

    runs = make_train_runs(config, data, progress=progress if every else None, progress_every=every)
    return compile_and_run(runs, jax.random.key(config.seed), log)


def _common_summary(config, result, timing) -> dict:
    div = diverged_report(result)
    ok = ~np.asarray(result.diverged)
    final = np.asarray(result.final_loss, dtype=np.float64)
    lr = np.asarray(result.lr, dtype=np.float64)
    per_lr = []
    for v in np.unique(lr):  # one entry per learning rate of the grid (one when there is no grid)
        m = lr == v
        per_lr.append({"lr": float(f"{v:.6g}"), "success_rate": float(np.mean(np.asarray(result.solved)[m])),
                       "final_loss_median": float(np.median(final[m & ok])) if (m & ok).any() else None,
                       "diverged": int((m & ~ok).sum())})
    return {
        "seeds": config.seeds,
        "runs": int(ok.size),
        "per_lr": per_lr,
        "success_rate": float(np.mean(np.asarray(result.solved))),
        "final_loss_median": float(np.median(final[ok])) if ok.any() else None,
        "final_accuracy_mean": float(np.mean(np.asarray(result.final_accuracy)[ok])) if ok.any() else None,
        "diverged": div["count"],
        "diverged_seeds": div["seeds"],
        **timing,
    }


def _say_diverged(summary: dict, config, log: Callable[[str], None], workdir: str) -> None:
    """A warning when some runs diverged; :class:`TrainingDiverged` when all did (after writing)."""
    n, runs = summary["diverged"], summary["runs"]
    if n == 0:
        return
    seeds = summary["diverged_seeds"]
    shown = ", ".join(map(str, seeds[:10])) + (" ..." if len(seeds) > 10 else "")
    lr = f"lrs {list(config.lrs)}" if config.lrs else f"lr {config.lr}"
    msg = (f"{n} of {runs} runs diverged (non-finite loss or parameters) with {lr}; seeds {shown}; "
           "they are left out of every aggregate (a smaller learning rate usually helps).")
    if n == runs:
        raise TrainingDiverged(f"training diverged: {msg} The run is in {workdir}.")
    log(f"warning: {msg}")


def _best_run(result) -> int | None:
    ok = ~np.asarray(result.diverged)
    if not ok.any():
        return None
    final = np.where(ok, np.asarray(result.final_loss, dtype=np.float64), np.inf)
    return int(np.argmin(final))


def _write_run(tmp: str, config, result, summary: dict):
    """What every training run writes: config.json, metrics.jsonl and the best run's params.npz.

    Returns ``(rows, best)``: the per-epoch aggregates and the index of the best run (``None`` if every
    run diverged); records ``best_run`` in ``summary``.
    """
    write_json(os.path.join(tmp, "config.json"), _config_dict(config))
    rows = aggregate_history(result)
    with open(os.path.join(tmp, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    best = _best_run(result)
    if best is not None:
        np.savez(os.path.join(tmp, "params.npz"), **_best_params(result, best))
        summary["best_run"] = best
    return rows, best


# ---------------------------------------------------------------------------------------------------
# XOR
# ---------------------------------------------------------------------------------------------------


def run_xor(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
    """Train the XOR network from ``config.seeds`` seeds and write the workdir; returns the summary."""
    X, y = xor()
    result, timing = _train(config, (X, y), log)
    summary = _common_summary(config, result, timing)
    with atomic_workdir(workdir) as tmp:
        rows, best = _write_run(tmp, config, result, summary)
        solved = np.flatnonzero(np.asarray(result.solved))
        title = f"XOR, width {config.width}, {config.activation}, {config.seeds} seeds"
        plots.loss_curves(rows, os.path.join(tmp, "loss_curves.png"), title=title)
        # pictures of a solved network (the best one if it solved XOR, else the first that did)
        show = best if best is not None and result.solved[best] else (int(solved[0]) if solved.size else best)
        if show is not None:
            p = jax.tree.map(lambda a: np.asarray(a[show]), result.params)
            X = X.astype(p[0]["W"].dtype)
            plots.decision_boundary(p, X, y, os.path.join(tmp, "decision_boundary.png"),
                                    activation=config.activation,
                                    title=f"run {show}: {'solved' if result.solved[show] else 'not solved'}")
            plots.hidden_space(p, X, y, os.path.join(tmp, "hidden_space.png"), activation=config.activation)
            summary["plotted_run"] = show
        write_json(os.path.join(tmp, "summary.json"), summary)
    _say_diverged(summary, config, log, workdir)
    log(f"solved {summary['success_rate']:.3f} of {summary['runs']} runs; diverged {summary['diverged']}; "
        f"{summary['seed_steps_per_second']:.3g} seed-steps/s; wrote {workdir}")
    return summary


# ---------------------------------------------------------------------------------------------------
# Digits: the lecture's softmax cross-entropy network on real data
# ---------------------------------------------------------------------------------------------------


#: The labelled image sets ``run_digits`` trains on (:func:`lecture6.data.load_image_set`).
DIGIT_DATASETS = ("digits", "mnist")


def run_digits(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
    """Train the 3-layer ReLU softmax network on ``config.dataset`` (the 8x8 digits, or MNIST: 784 -> width
    -> 10), minibatch SGD, and write the workdir; the test accuracy is on the held-out ``test_fraction``."""
    dataset = config.get("dataset", "digits")  # a config written before the field existed: the digits
    if dataset not in DIGIT_DATASETS:
        raise ValueError(f"config.dataset = {dataset!r} is invalid: expected one of {list(DIGIT_DATASETS)}")
    fraction = config.test_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"config.test_fraction = {fraction!r} is invalid: expected a number in (0, 1)")
    images = data.load_image_set(dataset, mnist_path=config.get("mnist_path", ""))
    Xtr, Xte, ytr, yte = train_test_split(jax.random.key(config.seed + 1), images.X, images.y,
                                          test_fraction=fraction)
    log(f"{dataset}: {Xtr.shape[0]} train, {Xte.shape[0]} test images; network {Xtr.shape[1]} -> "
        f"{config.width} ReLU -> {int(ytr.max()) + 1} softmax")
    result, timing = _train(config, (Xtr, ytr), log)
    summary = _common_summary(config, result, timing)
    # test accuracy of every run, with the library's forward pass
    logits = jax.vmap(lambda p: predict(p, jnp.asarray(Xte, dtype=jnp.dtype(config.dtype)),
                                        activation=config.activation))(result.params)
    test_acc = np.mean(np.asarray(jnp.argmax(logits, axis=-1)) == yte[None, :], axis=1)
    ok = ~np.asarray(result.diverged)
    summary.update({
        "dataset": dataset, "n_train": int(Xtr.shape[0]), "n_test": int(Xte.shape[0]),
        "test_accuracy_mean": float(test_acc[ok].mean()) if ok.any() else None,
        "test_accuracy_min": float(test_acc[ok].min()) if ok.any() else None,
        "test_accuracy_per_run": test_acc.tolist(),
    })
    with atomic_workdir(workdir) as tmp:
        rows, best = _write_run(tmp, config, result, summary)
        if best is not None:
            summary["test_accuracy_best_run"] = float(test_acc[best])
        title = f"{dataset}, width {config.width}, {config.seeds} seeds, softmax CE"
        plots.loss_curves(rows, os.path.join(tmp, "loss_curves.png"), title=title)
        plots.accuracy_curves(rows, os.path.join(tmp, "accuracy.png"), test_accuracy=summary["test_accuracy_mean"],
                              title=f"{dataset}: training accuracy per epoch and held-out test accuracy\n"
                                    f"(mean of {config.seeds} seeds; {Xtr.shape[0]} train, {Xte.shape[0]} test images)")
        write_json(os.path.join(tmp, "summary.json"), summary)
    _say_diverged(summary, config, log, workdir)
    acc = summary["test_accuracy_mean"]
    log(f"test accuracy {'-' if acc is None else f'{acc:.4f}'} (mean over runs); diverged {summary['diverged']}; "
        f"wrote {workdir}")
    return summary


# ---------------------------------------------------------------------------------------------------
# Probabilistic PCA
# ---------------------------------------------------------------------------------------------------

def run_ppca(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
    """Fit PPCA three ways (closed form, EM, gradient) on ``config.dataset``; write the workdir.

    With ``config.dequantize`` (the default) the pixels of an image data set are dequantized first,
    k / (L - 1) -> (k + u) / L with u ~ U[0, 1) drawn from the run's key (:func:`lecture6.data.dequantize`),
    so the Gaussian is a proper density of the discrete images and the held-out log-likelihood stays
    bounded as q grows. Fields left at None take the data set's defaults (``_PPCA_DEFAULTS`` below; the
    MNIST ones are sized for the 5,000 shipped images -- with ``mnist_path``'s 60,000 the gradient route
    costs 12x more per step).

    Writes ``config.json``; ``metrics.json``: per method ``train_loglik``/``test_loglik`` (nats per sample,
    in the [0, 1] pixel units of the fitted data) and ``train_bits_per_dim``/``test_bits_per_dim``
    (:func:`lecture6.data.bits_per_dim`), the sweep ``heldout`` (``q``, ``test_loglik``,
    ``test_bits_per_dim`` per q of ``config.q_grid``), ``best_q_heldout``, ``levels`` (None when not
    dequantized), ``seconds``; and PNGs (:mod:`lecture6.ppca_plots`): samples, directions, spectrum,
    reconstructions, heldout_vs_q, latent_traversal, and latent_space (a q=2 model, for labelled data).
    Returns the metrics.
    """
    start = time.perf_counter()
    config = _ppca_resolve(config)
    jax.config.update("jax_enable_x64", True)
    k_data, k_split, k_fit, k_sample, k_noise = jax.random.split(jax.random.key(config.seed), 5)
    images = data.load_image_set(config.dataset, key=k_data, mnist_path=config.mnist_path)
    levels = images.levels if config.dequantize else None
    X = images.X if levels is None else data.dequantize(k_noise, images.X, levels)
    X_train, X_test, y_test = _ppca_split(k_split, X, images.y, config.test_fraction)
    d = X.shape[1]
    log(f"{config.dataset}: {X_train.shape[0]} train, {X_test.shape[0]} test, d={d}, q={config.q}"
        + (f", dequantized ({levels} grey levels)" if levels else ""))
    out = ppca.fit_all(X_train, X_test, config.q, key=k_fit, em_iters=config.em_iters,
                       gradient_steps=config.gradient_steps, learning_rate=config.learning_rate,
                       qs=config.q_grid, log=log)
    metrics = _ppca_metrics(out, config.dataset, d, levels, log)
    model = out["models"]["closed_form"]
    shape, lo, hi = images.shape, float(images.X.min()), float(images.X.max())  # grey range as stored
    name = f"{config.dataset}{' (dequantized)' if levels else ''}"
    with atomic_workdir(workdir) as tmp:
        write_json(os.path.join(tmp, "config.json"), _config_dict(config))
        log("plotting ...")
        ppca_plots.image_grid(np.asarray(ppca.sample(model, k_sample, config.n_samples)), shape,
                              os.path.join(tmp, "samples.png"), vrange=(lo, hi),
                              title=f"{name}: new samples h ~ N(0, I), x = W h + b + N(0, sigma2 I), q={config.q}")
        ppca_plots.mean_and_directions(model.b, model.W, shape, os.path.join(tmp, "directions.png"),
                                       title=f"{name}: mean b and principal directions w_j, the columns of W "
                                             f"(red +, blue -), q={config.q}")
        ppca_plots.spectrum(out["spectrum"], config.q, float(model.sigma2), os.path.join(tmp, "spectrum.png"),
                            title=f"{name}: eigenvalues of the training covariance; the first q={config.q} "
                                  "make W,\nsigma2 is the mean of the rest")
        ppca_plots.reconstructions(X_test, np.asarray(ppca.reconstruct(model, X_test)), shape,
                                   os.path.join(tmp, "reconstructions.png"), vrange=(lo, hi),
                                   title=f"{name}: held-out images (top), reconstructions W E[h|x] + b "
                                         f"(bottom), q={config.q}")
        ppca_plots.latent_traversal(model.W, model.b, shape, os.path.join(tmp, "latent_traversal.png"),
                                    vrange=(lo, hi),
                                    title=f"{name}: x = W h + b as one latent h_j = t moves (the others 0), "
                                          f"q={config.q}")
        if out["qs"]:
            ppca_plots.heldout_curve(out["qs"], out["heldout"], config.q, os.path.join(tmp, "heldout_vs_q.png"),
                                     d=d, levels=levels,
                                     title=f"{name}: held-out log-likelihood against q "
                                           f"({X_train.shape[0]} train, {X_test.shape[0]} test images)")
        if y_test is not None and d > 2:
            H, _ = ppca.posterior(ppca.fit_closed_form(X_train, 2), X_test)
            ppca_plots.latent_space(np.asarray(H), y_test, os.path.join(tmp, "latent_space.png"),
                                    title=f"{name}: posterior means E[h | x] of a q=2 model, "
                                          f"{X_test.shape[0]} held-out images by label")
        metrics["seconds"] = time.perf_counter() - start
        write_json(os.path.join(tmp, "metrics.json"), metrics)
    log(f"wrote {workdir} ({metrics['seconds']:.1f} s)")
    return metrics


# What a config field left at None (its placeholder) means, per data set: enough EM iterations and
# gradient steps to come close to the closed form, and a q grid that brackets the held-out maximum,
# while a run stays within about a minute on 2 cores (MNIST: 5,000 x 784; the gradient route costs
# O(n d q) per step, so it gets fewer steps there).
_PPCA_DEFAULTS = {
    "digits": {"em_iters": 300, "gradient_steps": 1000,
               "q_grid": (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 55, 60, 63)},
    "faces": {"em_iters": 3000, "gradient_steps": 3000,
              "q_grid": (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 60)},
    "mnist": {"em_iters": 200, "gradient_steps": 200,
              "q_grid": (1, 5, 10, 20, 50, 100, 200, 300, 400, 500, 550, 600, 700)},
    "synthetic": {"em_iters": 300, "gradient_steps": 1000, "q_grid": (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)},
}


def _ppca_resolve(config):
    """A copy of ``config`` with every field left at None set to the data set's default (``_PPCA_DEFAULTS``)."""
    if config.dataset not in _PPCA_DEFAULTS:
        raise ValueError(f"config.dataset = {config.dataset!r} is unknown; expected one of {sorted(_PPCA_DEFAULTS)}")
    import ml_collections

    resolved = ml_collections.ConfigDict(config.to_dict() if hasattr(config, "to_dict") else dict(config))
    for field, value in _PPCA_DEFAULTS[config.dataset].items():
        if resolved.get(field) is None:
            resolved[field] = value
    return resolved


def _ppca_split(key, X, y, test_fraction):
    """``(X_train, X_test, y_test)``; ``y_test`` is None for unlabelled data."""
    if y is None:
        return (*data.train_test_split(key, X, test_fraction=test_fraction), None)
    X_train, X_test, _, y_test = data.train_test_split(key, X, y, test_fraction=test_fraction)
    return X_train, X_test, y_test


def _ppca_metrics(out: dict, dataset: str, d: int, levels, log: Callable[[str], None]) -> dict:
    """:func:`lecture6.ppca.fit_all`'s metrics with bits per dimension beside every log-likelihood."""
    metrics = dict(out["metrics"], dataset=dataset, levels=levels, dequantized=levels is not None)
    for method in out["models"]:
        m = metrics[method]
        m["train_bits_per_dim"] = float(data.bits_per_dim(m["train_loglik"], d, levels))
        m["test_bits_per_dim"] = float(data.bits_per_dim(m["test_loglik"], d, levels))
    bits = data.bits_per_dim(out["heldout"], d, levels) if out["qs"] else []
    metrics["heldout"] = [{"q": q, "test_loglik": ll, "test_bits_per_dim": float(b)}
                          for q, ll, b in zip(out["qs"], out["heldout"], bits)]
    for row in metrics["heldout"]:
        log(f"  q={row['q']:4d}  held-out {row['test_loglik']:10.3f} nats/sample  "
            f"{row['test_bits_per_dim']:.4f} bits/dim")
    if out["qs"]:
        best = metrics["heldout"][int(np.argmax(out["heldout"]))]
        metrics["best_heldout_bits_per_dim"] = best["test_bits_per_dim"]
        log(f"best held-out q = {best['q']} ({best['test_bits_per_dim']:.4f} bits/dim)")
    return metrics
