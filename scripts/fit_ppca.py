"""Fit probabilistic PCA three ways on one data set and write metrics and plots.

    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=digits --config.q=10 \
        --workdir runs/ppca

Writes into ``--workdir`` (replaced as a whole, only once everything is written): config.json,
metrics.json and the PNGs samples.png, directions.png, spectrum.png, reconstructions.png,
heldout_vs_q.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lecture6 import data, ppca, ppca_plots

_CONFIG = config_flags.DEFINE_config_file("config", None, "path to a config file (configs/ppca.py)")
_WORKDIR = flags.DEFINE_string("workdir", None, "output directory (replaced atomically)")
flags.mark_flags_as_required(["config", "workdir"])

_DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "ppca.py")


def check_config(config) -> None:
    """Reject unknown or missing keys: a typo must not silently fall back to a default."""
    spec = importlib.util.spec_from_file_location("ppca_defaults", _DEFAULTS)
    defaults = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(defaults)
    expected = set(defaults.get_config().keys())
    got = set(config.keys())
    if got - expected:
        raise ValueError(f"unknown config keys {sorted(got - expected)}; known keys: {sorted(expected)}")
    if expected - got:
        raise ValueError(f"config is missing keys {sorted(expected - got)}")


def write_dir_atomically(workdir: str, write) -> None:
    """Call ``write(tmpdir)``, then move tmpdir to ``workdir``; a crash leaves no half-written workdir."""
    workdir = os.path.abspath(workdir)
    parent = os.path.dirname(workdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.tmp-", dir=parent)
    try:
        write(tmp)
        old = None
        if os.path.exists(workdir):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.old-", dir=parent)
            os.replace(workdir, os.path.join(old, "previous"))
        os.replace(tmp, workdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep JAX's backend INFO lines out of the progress output
    config = _CONFIG.value
    check_config(config)
    jax.config.update("jax_enable_x64", True)

    def log(msg):
        print(msg, flush=True)

    k_data, k_split, k_fit, k_sample = jax.random.split(jax.random.key(config.seed), 4)
    X, shape = data.load_images(config.dataset, key=k_data, mnist_path=config.mnist_path)
    X_train, X_test = data.train_test_split(k_split, X, test_fraction=config.test_fraction)
    log(f"{config.dataset}: {X_train.shape[0]} train, {X_test.shape[0]} test, d={X.shape[1]}, q={config.q}")
    out = ppca.fit_all(X_train, X_test, config.q, key=k_fit, em_iters=config.em_iters,
                       gradient_steps=config.gradient_steps, learning_rate=config.learning_rate,
                       qs=config.q_grid, log=log)
    model = out["models"]["closed_form"]

    def write(tmp):
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=2)
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            json.dump(out["metrics"], f, indent=2)
        log("plotting ...")
        ppca_plots.image_grid(np.asarray(ppca.sample(model, k_sample, config.n_samples)), shape,
                              os.path.join(tmp, "samples.png"),
                              title=f"samples: h ~ N(0, I), x | h ~ N(Wh + b, sigma2 I), q={config.q}")
        ppca_plots.mean_and_directions(model.b, model.W, shape, os.path.join(tmp, "directions.png"))
        ppca_plots.spectrum(out["spectrum"], config.q, float(model.sigma2),
                            os.path.join(tmp, "spectrum.png"))
        ppca_plots.reconstructions(X_test, np.asarray(ppca.reconstruct(model, X_test)), shape,
                                   os.path.join(tmp, "reconstructions.png"))
        if out["qs"]:
            ppca_plots.heldout_curve(out["qs"], out["heldout"], config.q,
                                     os.path.join(tmp, "heldout_vs_q.png"))

    write_dir_atomically(_WORKDIR.value, write)
    log(f"wrote {_WORKDIR.value}")


if __name__ == "__main__":
    sys.exit(app.run(main))
