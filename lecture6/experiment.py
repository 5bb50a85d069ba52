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

import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import compile_time, data, plots, ppca, ppca_plots
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
    dequantized), ``seconds`` and ``compile_seconds`` (the part of them JAX spent tracing and compiling,
    :mod:`lecture6.compile_time`; per method too); and PNGs (:mod:`lecture6.ppca_plots`): samples, directions, spectrum,
    reconstructions, heldout_vs_q, latent_traversal, and latent_space (a q=2 model, for labelled data).
    Returns the metrics.

    **Files larger than memory** (``dataset`` ``npy`` or ``idx``, file or directory in ``config.path``)
    are read ``config.rows_per_chunk`` rows at a time (:func:`lecture6.data.npy_chunks`,
    :func:`lecture6.data.idx_chunks`, :func:`lecture6.data.mnist_chunks`) and fitted from their moments
    (:func:`lecture6.ppca.fit_all_chunks`): memory O(d^2) plus one chunk, one pass over the training rows
    and one over the held-out rows, which are the rows ``train_test_split`` would hold out with the same
    key (:func:`lecture6.data.heldout_mask`). ``npy``: an array ``(n, d)`` or ``(n, h, w)`` of real numbers
    (integers are read as they are; no grey levels assumed). ``idx``: a directory holding the MNIST
    files (``train-images-idx3-ubyte``, optionally ``.gz``; the 60,000 training images) or one IDX file;
    unsigned bytes are pixels k / 255 with 256 grey levels, dequantized with ``config.dequantize``, the
    noise of file row r drawn from ``fold_in(key, r)`` (whatever the chunk size; not the in-memory
    route's draw, so ``--config.dataset=mnist --config.mnist_path=DIR`` gives statistically equal, not
    identical, numbers). Absent there: the gradient route (it needs every row at every step: the
    ``gradient`` entry of ``metrics.json``), and ``latent_space.png`` (it needs the labels and every
    held-out row in memory). The image figures need an image shape: the file's own ``(h, w)``, or
    square rows (d = s^2); otherwise only the spectrum and the held-out curve are drawn.
    ``metrics.json`` also records ``path`` and ``rows_per_chunk``. A missing file, a file that is not
    an array of real numbers with rows, and a NaN or inf (named by its file row, its chunk and its
    column) raise ``ValueError``.
    """
    with compile_time.measure() as spent:
        return _run_ppca(config, workdir, log, spent)


def _run_ppca(config, workdir: str, log: Callable[[str], None], spent: compile_time.Spent) -> dict:
    start = time.perf_counter()
    config = _ppca_resolve(config)
    jax.config.update("jax_enable_x64", True)
    keys = jax.random.split(jax.random.key(config.seed), 5)
    fit = _ppca_chunked(config, keys, log) if config.dataset in _CHUNKED else _ppca_in_memory(config, keys, log)
    out, model, shape, name = fit["out"], fit["out"]["models"]["closed_form"], fit["shape"], fit["name"]
    d, levels, vrange, k_sample = fit["d"], fit["levels"], fit["vrange"], keys[3]
    metrics = _ppca_metrics(out, config.dataset, d, levels, log)
    metrics.update(fit.get("extra_metrics", {}))
    with atomic_workdir(workdir) as tmp:
        write_json(os.path.join(tmp, "config.json"), _config_dict(config))
        log("plotting ...")
        if shape is not None:
            ppca_plots.image_grid(np.asarray(ppca.sample(model, k_sample, config.n_samples)), shape,
                                  os.path.join(tmp, "samples.png"), vrange=vrange,
                                  title=f"{name}: new samples h ~ N(0, I), x = W h + b + N(0, sigma2 I), "
                                        f"q={config.q}")
            ppca_plots.mean_and_directions(model.b, model.W, shape, os.path.join(tmp, "directions.png"),
                                           title=f"{name}: mean b and principal directions w_j, the columns "
                                                 f"of W (red +, blue -), q={config.q}")
        ppca_plots.spectrum(out["spectrum"], config.q, float(model.sigma2), os.path.join(tmp, "spectrum.png"),
                            title=f"{name}: eigenvalues of the training covariance; the first q={config.q} "
                                  "make W,\nsigma2 is the mean of the rest")
        if shape is not None:
            X_show = fit["X_show"]
            ppca_plots.reconstructions(X_show, np.asarray(ppca.reconstruct(model, X_show)), shape,
                                       os.path.join(tmp, "reconstructions.png"), vrange=vrange,
                                       title=f"{name}: held-out images (top), reconstructions W E[h|x] + b "
                                             f"(bottom), q={config.q}")
            ppca_plots.latent_traversal(model.W, model.b, shape, os.path.join(tmp, "latent_traversal.png"),
                                        vrange=vrange,
                                        title=f"{name}: x = W h + b as one latent h_j = t moves (the others 0), "
                                              f"q={config.q}")
        if out["qs"]:
            n_train, n_test = out["metrics"]["n_train"], out["metrics"]["n_test"]
            ppca_plots.heldout_curve(out["qs"], out["heldout"], config.q, os.path.join(tmp, "heldout_vs_q.png"),
                                     d=d, levels=levels,
                                     title=f"{name}: held-out log-likelihood against q "
                                           f"({n_train} train, {n_test} test images)")
        if fit.get("latent") is not None:
            H, y_test = fit["latent"]
            ppca_plots.latent_space(H, y_test, os.path.join(tmp, "latent_space.png"),
                                    title=f"{name}: posterior means E[h | x] of a q=2 model, "
                                          f"{len(y_test)} held-out images by label")
        metrics["seconds"] = time.perf_counter() - start
        metrics["compile_seconds"] = spent.seconds
        write_json(os.path.join(tmp, "metrics.json"), metrics)
    log(f"wrote {workdir} ({metrics['seconds']:.1f} s, {spent.seconds:.1f} s of it compiling)")
    return metrics


def _ppca_in_memory(config, keys, log) -> dict:
    """Every row in memory: the three routes of :func:`lecture6.ppca.fit_all`, and what the figures need."""
    k_data, k_split, k_fit, _, k_noise = keys
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
    latent = None
    if y_test is not None and d > 2:
        H, _ = ppca.posterior(ppca.fit_closed_form(X_train, 2), X_test)
        latent = (np.asarray(H), y_test)
    return {"out": out, "d": d, "levels": levels, "shape": images.shape, "X_show": X_test, "latent": latent,
            "vrange": (float(images.X.min()), float(images.X.max())),  # grey range as stored
            "name": f"{config.dataset}{' (dequantized)' if levels else ''}"}


# ---------------------------------------------------------------------------------------------------
# Probabilistic PCA on files larger than memory
# ---------------------------------------------------------------------------------------------------

_CHUNKED = ("npy", "idx")  # data sets read chunk by chunk from config.path
_N_SHOW = 8  # held-out rows kept for the reconstructions figure


def _ppca_chunked(config, keys, log) -> dict:
    """``config.path`` read chunk by chunk: the closed form and EM from the moments
    (:func:`lecture6.ppca.fit_all_chunks`), and what the figures need (see :func:`run_ppca`)."""
    _, k_split, k_fit, _, k_noise = keys
    source = _ChunkSource(config, k_split, k_noise)
    log(f"{config.dataset} {source.path}: {source.n_train} train, {source.n - source.n_train} test rows of "
        f"d={source.d} ({source.file_dtype}), read {source.rows_desc} at a time, q={config.q}"
        + (f", dequantized ({source.levels} grey levels)" if source.levels else ""))
    k_em, _ = jax.random.split(k_fit)  # the key ppca.fit_all gives EM
    out = ppca.fit_all_chunks(lambda: source.chunks("train"), lambda: source.chunks("test"), config.q,
                              key=k_em, em_iters=config.em_iters, qs=config.q_grid, log=log)
    name = f"{os.path.basename(source.path)}{' (dequantized)' if source.levels else ''}"
    return {"out": out, "d": source.d, "levels": source.levels, "shape": source.shape, "name": name,
            "X_show": np.concatenate(source.shown) if source.shown else None,
            "vrange": (source.lo, source.hi), "latent": None,
            "extra_metrics": {"path": source.path, "rows_per_chunk": config.rows_per_chunk}}


class _ChunkSource:
    """The training or held-out rows of ``config.path``, chunk by chunk, as ``(rows, d)`` (float32 or
    float64 as stored, other types as float64): checked
    for NaN/inf (named by file row), dequantized when the file holds byte pixels, their grey range noted."""

    def __init__(self, config, k_split, k_noise):
        path = config.path
        if not isinstance(path, str) or not path:
            raise ValueError(f"config.path = {path!r}: dataset {config.dataset!r} reads its rows from a file; "
                             f"give one with --config.path=" + ("FILE.npy" if config.dataset == "npy" else
                                                               "DIR (MNIST IDX files) or FILE (one IDX file)"))
        if not os.path.exists(path):
            raise ValueError(f"config.path = {path!r}: no such file or directory")
        rows = config.rows_per_chunk
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
            raise ValueError(f"config.rows_per_chunk = {rows!r} is invalid: expected a positive integer "
                             "(or None: 32 MiB of rows at a time)")
        self.path = path
        self.rows_desc = f"{rows} rows" if rows else "32 MiB of rows"
        split = {"rows_per_chunk": rows, "key": k_split, "test_fraction": config.test_fraction}
        if config.dataset == "npy":
            if not os.path.isfile(path):
                raise ValueError(f"config.path = {path!r} is a directory; dataset 'npy' reads one .npy file")
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise ValueError(f"{path}: not a .npy file (it does not start with the .npy magic string)")
            try:
                header = np.load(path, mmap_mode="r")  # reads the header only
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: not a .npy array that can be memory-mapped ({exc})") from None
            dtype = header.dtype
            if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer) or dtype == np.bool_):
                raise ValueError(f"{path}: dtype {dtype} is not a real number type; PPCA reads float or "
                                 "integer rows")
            self._open = lambda part: data.npy_chunks(path, part=part, **split)
            self._open("train")  # the reader checks the rest (rows, C order) when it is called
            n, row_shape = header.shape[0], header.shape[1:]
            del header
            levels = None
        else:
            if os.path.isdir(path):
                try:
                    file = data._find(path, data._MNIST_FILES["train"][0])  # the names load_mnist accepts
                except FileNotFoundError as exc:
                    raise ValueError(f"config.path = {path!r}: {exc} (dataset 'idx' reads a directory of "
                                     "MNIST IDX files, or one IDX file)") from None
            else:
                file = path
            _, dtype, shape, _ = data._idx_header(file)  # checks the magic number
            n, row_shape = shape[0], shape[1:]
            # Byte pixels k are read as k / 255 (as load_mnist does): 256 grey levels.
            levels = data.LEVELS["mnist"] if dtype == np.uint8 and config.dequantize else None
            if os.path.isdir(path):
                self._open = lambda part: data.mnist_chunks(path, "train", part=part, **split)
            else:
                scale = 255.0 if dtype == np.uint8 else 1.0
                self._open = lambda part: data.idx_chunks(path, part=part, scale=scale, **split)
            self._open("train")  # checks the rows and, uncompressed, the file size
        self.n, self.file_dtype, self.levels, self.k_noise = n, np.dtype(dtype).name, levels, k_noise
        self.d = int(np.prod(row_shape)) if row_shape else 1
        self.shape = _image_shape(row_shape)
        self.test = data.heldout_mask(k_split, n, test_fraction=config.test_fraction)
        self.n_train = int(n - self.test.sum())
        self.lo, self.hi, self.shown = np.inf, -np.inf, []

    def chunks(self, part: str):
        """A fresh pass over the ``part`` rows (``"train"`` or ``"test"``)."""
        file_rows = np.flatnonzero(self.test if part == "test" else ~self.test)  # the k-th row read is here
        seen = 0
        for c, chunk in enumerate(self._open(part)):
            chunk = np.asarray(chunk).reshape(len(chunk), -1)
            if not np.issubdtype(chunk.dtype, np.floating):
                chunk = chunk.astype(np.float64)  # float32 stays float32: the fits compute in float64 anyway
            rows = file_rows[seen:seen + len(chunk)]
            seen += len(chunk)
            if not np.isfinite(chunk.sum(dtype=np.float64)):
                bad = np.argwhere(~np.isfinite(chunk))
                if len(bad):  # else only too large to sum: ppca.moments_chunks names that
                    i, j = (int(v) for v in bad[0])
                    raise ValueError(f"{self.path}: row {rows[i]} holds {chunk[i, j]} in column {j} (chunk {c} "
                                     f"of the {part} rows, its row {i}); PPCA needs finite values")
            self.lo, self.hi = min(self.lo, float(chunk.min())), max(self.hi, float(chunk.max()))
            if self.levels:
                chunk = _dequantize_rows(self.k_noise, rows, chunk, self.levels)
            if part == "test" and len(self.shown) < _N_SHOW:
                self.shown.append(chunk[:_N_SHOW - sum(len(s) for s in self.shown)])
            yield chunk


def _image_shape(row_shape) -> tuple[int, int] | None:
    """The image shape of a row: the file's own 2-D shape, or square rows; None when neither."""
    if len(row_shape) == 2:
        return tuple(int(s) for s in row_shape)
    d = int(np.prod(row_shape)) if row_shape else 1
    s = int(round(d ** 0.5))
    return (s, s) if s * s == d and d > 1 else None


_NOISE_ROWS = 512  # rows of noise drawn per call: one shape, one compile, whatever the chunks' lengths


def _dequantize_rows(key, file_rows, X, levels: int) -> np.ndarray:
    """:func:`lecture6.data.dequantize`'s (k + u) / L for rows ``X`` = k / (L - 1) of the file, the noise
    of file row r drawn from ``fold_in(key, r)`` (so it does not depend on the chunking)."""
    n, d = X.shape
    idx = np.zeros(-(-n // _NOISE_ROWS) * _NOISE_ROWS, dtype=np.int64)
    idx[:n] = file_rows
    u = np.concatenate([np.asarray(_row_uniforms(key, jnp.asarray(block), d))
                        for block in idx.reshape(-1, _NOISE_ROWS)])[:n]
    return (np.rint(X * (levels - 1)) + u) / levels


@functools.partial(jax.jit, static_argnums=2)
def _row_uniforms(key, rows, d: int):
    return jax.vmap(lambda r: jax.random.uniform(jax.random.fold_in(key, r), (d,), dtype=jnp.float64))(rows)


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
    # Read chunk by chunk: no gradient route; the grid stops below d.
    "npy": {"em_iters": 200, "q_grid": (1, 2, 3, 5, 10, 20, 50, 100, 200, 300, 400, 500, 600, 700)},
    "idx": {"em_iters": 200, "q_grid": (1, 5, 10, 20, 50, 100, 200, 300, 400, 500, 550, 600, 700)},
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
