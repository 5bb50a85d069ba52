"""Training runs that write a workdir: the entry points behind ``scripts/train_xor.py`` and
``scripts/train_digits.py``.

A run validates its config first (a bad field raises ``ValueError`` before anything is written), trains
with :func:`lecture6.train.make_train`, and writes everything into a temporary directory next to the
workdir that is renamed into place only when complete -- a workdir that exists is a finished run:

* ``config.json`` -- the config as run; ``metrics.jsonl`` -- one line per logged epoch, aggregates over
  the seeds that did not diverge (:func:`lecture6.train.aggregate_history`);
* ``params.npz`` -- the best seed's params (``W1, b1, W2, b2, ...``);
* ``summary.json`` -- seeds, success rate, final loss median, divergence, compile and train seconds,
  seed-steps per second (and test accuracy for the digits);
* PNG plots (:mod:`lecture6.plots`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import plots
from lecture6.data import load_digits, train_test_split, xor
from lecture6.mlp import predict
from lecture6.train import aggregate_history, diverged_report, make_train, validate_config

#: Fields a script's config may have besides the training fields of :data:`lecture6.train.DEFAULTS`.
SCRIPT_FIELDS = ("progress_every", "test_fraction")


# ---------------------------------------------------------------------------------------------------
# Config files and command-line overrides
# ---------------------------------------------------------------------------------------------------


def load_config_file(path: str):
    """``get_config()`` of a Python config file."""
    spec = importlib.util.spec_from_file_location("_lecture6_config", path)
    if spec is None or not os.path.exists(path):
        raise ValueError(f"config file {path!r} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def check_overrides(argv: list[str], default_config: str) -> None:
    """Exit with a clear message if a ``--config.<field>=...`` names a field the config file lacks.

    ml_collections reports an unknown field as a long traceback; this check runs first and names
    the field, the value and the known fields instead.
    """
    path = default_config
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            path = a.split("=", 1)[1]
        elif a == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
    try:
        fields = set(load_config_file(path).keys())
    except (ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
    for a in argv:
        if a.startswith("--config."):
            name, _, _value = a[len("--config."):].partition("=")
            if name.split(".")[0] not in fields:
                sys.exit(f"error: unknown config field config.{name} (given {a!r}); "
                         f"known fields: {', '.join(sorted(fields))}")


# ---------------------------------------------------------------------------------------------------
# Writing a workdir atomically
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_workdir(workdir: str):
    """Yield a temporary directory beside ``workdir``; on success it replaces ``workdir``.

    On an exception the temporary directory is removed and an existing ``workdir`` is left as it was.
    """
    workdir = os.path.abspath(workdir)
    parent = os.path.dirname(workdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(workdir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.old-", dir=parent)
        os.replace(workdir, os.path.join(old, "run"))
    os.replace(tmp, workdir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def _config_dict(config) -> dict:
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _train_config(config) -> dict:
    return {k: v for k, v in _config_dict(config).items() if k not in SCRIPT_FIELDS}


def _best_params(result, i: int) -> dict:
    out = {}
    for k, layer in enumerate(result.params, start=1):
        out[f"W{k}"] = np.asarray(layer["W"][i])
        out[f"b{k}"] = np.asarray(layer["b"][i])
    return out


def _validate(config):
    """Validate a script config; ``dtype="float64"`` switches on 64-bit JAX for this process first."""
    if config.get("dtype") == "float64":
        jax.config.update("jax_enable_x64", True)
    return validate_config(config, extra=SCRIPT_FIELDS)


def _timed_train(config, data, log: Callable[[str], None], progress_every: int):
    """Compile, run, and time one training program; returns ``(spec, train, result, timings)``."""
    spec = _validate(config)

    def progress(epoch, mean_loss, n_finite, solved):
        log(f"epoch {epoch:6d}/{spec.epochs}  mean loss {mean_loss:.5f}  finite seeds {n_finite}  "
            f"solved (this epoch) {solved:.3f}")

    train = make_train(_train_config(config), data, progress=progress if progress_every else None,
                       progress_every=progress_every)
    key = jax.random.key(spec.seed)
    compile_s = train.compile(key)
    log(f"compiled in {compile_s:.2f} s ({train.runs} runs, layout {train.layout}); training ...")
    t0 = time.perf_counter()
    result = jax.block_until_ready(train(key))
    jax.effects_barrier()
    train_s = time.perf_counter() - t0
    steps = spec.epochs * train.n_batches
    timing = {"compile_seconds": compile_s, "train_seconds": train_s,
              "seed_steps_per_second": train.runs * steps / train_s, "steps_per_seed": steps,
              "layout": train.layout}
    return spec, train, result, timing


def _common_summary(spec, result, timing) -> dict:
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
        "seeds": spec.seeds,
        "runs": int(ok.size),
        "per_lr": per_lr,
        "success_rate": float(np.mean(np.asarray(result.solved))),
        "final_loss_median": float(np.median(final[ok])) if ok.any() else None,
        "final_accuracy_mean": float(np.mean(np.asarray(result.final_accuracy)[ok])) if ok.any() else None,
        "diverged": div["count"],
        "diverged_seeds": div["seeds"],
        **timing,
    }


def _best_run(result) -> int | None:
    ok = ~np.asarray(result.diverged)
    if not ok.any():
        return None
    final = np.where(ok, np.asarray(result.final_loss, dtype=np.float64), np.inf)
    return int(np.argmin(final))


# ---------------------------------------------------------------------------------------------------
# XOR
# ---------------------------------------------------------------------------------------------------


def run_xor(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
    """Train the XOR network from ``config.seeds`` seeds and write the workdir; returns the summary."""
    _validate(config)
    X, y = xor()
    progress_every = int(config.get("progress_every", 0) or 0)
    spec, _train, result, timing = _timed_train(config, (X, y), log, progress_every)
    summary = _common_summary(spec, result, timing)
    with atomic_workdir(workdir) as tmp:
        _json(os.path.join(tmp, "config.json"), _config_dict(config))
        rows = aggregate_history(result)
        with open(os.path.join(tmp, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        best = _best_run(result)
        solved = np.flatnonzero(np.asarray(result.solved))
        title = f"XOR, width {spec.width}, {spec.activation}, {spec.seeds} seeds"
        plots.loss_curves(rows, os.path.join(tmp, "loss_curves.png"), title=title)
        if best is not None:
            np.savez(os.path.join(tmp, "params.npz"), **_best_params(result, best))
            summary["best_run"] = best
        # pictures of a solved network (the best one if it solved XOR, else the first that did)
        show = best if best is not None and result.solved[best] else (int(solved[0]) if solved.size else best)
        if show is not None and spec.width >= 1:
            p = jax.tree.map(lambda a: np.asarray(a[show]), result.params)
            X = X.astype(p[0]["W"].dtype)
            plots.decision_boundary(p, X, y, os.path.join(tmp, "decision_boundary.png"),
                                    activation=spec.activation,
                                    title=f"run {show}: {'solved' if result.solved[show] else 'not solved'}")
            plots.hidden_space(p, X, y, os.path.join(tmp, "hidden_space.png"), activation=spec.activation)
            summary["plotted_run"] = show
        _json(os.path.join(tmp, "summary.json"), summary)
    log(f"solved {summary['success_rate']:.3f} of {summary['runs']} runs; diverged {summary['diverged']}; "
        f"{summary['seed_steps_per_second']:.3g} seed-steps/s; wrote {workdir}")
    return summary


# ---------------------------------------------------------------------------------------------------
# Digits: the lecture's softmax cross-entropy network on real data
# ---------------------------------------------------------------------------------------------------


def run_digits(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
    """Train the 3-layer ReLU softmax network on the 8x8 digits, minibatch SGD; write the workdir."""
    spec = _validate(config)
    test_fraction = float(config.get("test_fraction", 0.2))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"config.test_fraction = {test_fraction!r} is invalid: expected a number in (0, 1)")
    X, labels = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(jax.random.key(spec.seed + 1), X, labels,
                                          test_fraction=test_fraction)
    progress_every = int(config.get("progress_every", 0) or 0)
    spec, _train, result, timing = _timed_train(config, (Xtr, ytr), log, progress_every)
    summary = _common_summary(spec, result, timing)
    # test accuracy of every run, with the library's forward pass
    logits = jax.vmap(lambda p: predict(p, jnp.asarray(Xte, dtype=jnp.dtype(spec.dtype)),
                                        activation=spec.activation))(result.params)
    test_acc = np.mean(np.asarray(jnp.argmax(logits, axis=-1)) == yte[None, :], axis=1)
    ok = ~np.asarray(result.diverged)
    summary.update({
        "n_train": int(Xtr.shape[0]), "n_test": int(Xte.shape[0]),
        "test_accuracy_mean": float(test_acc[ok].mean()) if ok.any() else None,
        "test_accuracy_per_run": test_acc.tolist(),
    })
    with atomic_workdir(workdir) as tmp:
        _json(os.path.join(tmp, "config.json"), _config_dict(config))
        rows = aggregate_history(result)
        with open(os.path.join(tmp, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        best = _best_run(result)
        if best is not None:
            np.savez(os.path.join(tmp, "params.npz"), **_best_params(result, best))
            summary["best_run"] = best
            summary["test_accuracy_best_run"] = float(test_acc[best])
        title = f"digits, width {spec.width}, {spec.seeds} seeds, softmax CE"
        plots.loss_curves(rows, os.path.join(tmp, "loss_curves.png"), title=title)
        plots.accuracy_curves(rows, os.path.join(tmp, "accuracy.png"),
                              test_accuracy=summary["test_accuracy_mean"])
        _json(os.path.join(tmp, "summary.json"), summary)
    log(f"test accuracy {summary['test_accuracy_mean']} (mean over runs); diverged {summary['diverged']}; "
        f"wrote {workdir}")
    return summary
