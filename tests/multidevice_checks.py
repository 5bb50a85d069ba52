"""Checks that need several devices, run by tests/test_sharding.py in a subprocess (so the rest of the suite
keeps one device): once as one process with 4 CPU devices, once under ``lecture6.launch`` as 2 processes
x 2 devices. Process 0 writes what it computed to ``OUTDIR/results.npz``; the test compares it with
references computed independently: PPCA with NumPy in the test process, and the training runs by this
script with ``--reference`` on one device, without a mesh (its own process, like the others, so that
"bit for bit" compares programs compiled with the same, default, settings).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multidevice_checks.py --outdir OUTDIR
    python -m lecture6.launch --processes 2 --devices-per-process 2 -- tests/multidevice_checks.py --outdir OUTDIR
    python tests/multidevice_checks.py --reference --outdir OUTDIR

It starts as every script does (``lecture6.rundir.run``: flags, then ``distributed.initialize``, then
only process 0 prints), so the launch also checks that a script runs unchanged as several processes.
"""

import os
import pathlib

import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
XOR_CONFIG = str(ROOT / "configs" / "xor.py")
N_EVEN, N_ODD, D, Q = 200, 203, 6, 2

# Training (XOR, float64). 5 seeds x 2 rates = 10 runs: the seeds-last layout, padded to 12 runs on
# 2 processes x 2 devices. The data-parallel runs: 5 runs (vmap layout) on a 2 x 2 mesh, padded to 6, the
# full batch of 4 examples split 2 + 2. The study: one cell of 6 seeds (vmap layout), padded to 8.
XOR_RUNS = {"seeds": 5, "lrs": (0.1, 0.5), "epochs": 40, "log_every": 10, "width": 3, "dtype": "float64",
            "progress_every": 20}
DP_RUNS = {"seeds": 5, "lrs": (), "lr": 0.3, "epochs": 30, "log_every": 10, "width": 3, "dtype": "float64",
           "progress_every": 0, "data_parallel": True}
STUDY = {"widths": (3,), "activations": ("tanh",), "seeds": 6}
STUDY_CONFIG = {"epochs": 40, "log_every": 10, "dtype": "float64", "progress_every": 0}


def make_data(n=N_ODD, d=D, seed=0):
    """Correlated rows with a mean far from zero (so a wrong mean or a dropped row shows)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0 + np.arange(d)[None, :]


def train_config(base, fields) -> ml_collections.ConfigDict:
    """``base`` (the XOR config) with ``fields`` changed."""
    return ml_collections.ConfigDict({**base.to_dict(), **fields})


def result_arrays(prefix: str, result) -> dict:
    """Every per-run field of a (host) TrainResult as flat arrays named ``prefix_field``."""
    out = {f"{prefix}_{k}": getattr(result, k) for k in ("loss", "accuracy", "final_loss", "solved", "diverged",
                                                           "seed", "lr")}
    for i, layer in enumerate(result.params):
        out[f"{prefix}_W{i}"], out[f"{prefix}_b{i}"] = layer["W"], layer["b"]
    return out


def ppca_checks(out):
    import jax

    from lecture6 import ppca, sharding

    mesh = sharding.make_mesh()
    X = make_data()

    # Rows split evenly: the public PPCA functions run on the shards as they are.
    Xs = sharding.shard_rows(X[:N_EVEN], mesh)
    out["even_rows_per_shard"] = [s.data.shape[0] for s in Xs.addressable_shards]
    model = ppca.fit_closed_form(Xs, Q)
    out.update(even_W=model.W, even_b=model.b, even_sigma2=model.sigma2,
               even_ll=sharding.ppca_mean_log_likelihood(model, Xs))
    jitted = jax.jit(ppca.fit_closed_form, static_argnames="q")(Xs, Q)  # no host step inside
    out["even_jit_W"] = jitted.W
    out["even_W_replicated"] = model.W.sharding.is_fully_replicated

    # A row count the mesh does not divide: refused by shard_rows, padded and masked on request.
    try:
        sharding.shard_rows(X, mesh)
        out["refusal"] = ""
    except ValueError as exc:
        out["refusal"] = str(exc)
    if jax.process_count() == 1:
        Xp, mask = sharding.shard_rows_padded(X, mesh)
    else:  # each process passes only its own rows
        rows = sharding.process_rows(N_ODD, mesh)
        out["process_rows"] = np.array([rows.start, rows.stop])
        Xp, mask = sharding.rows_from_processes(X[rows], N_ODD, mesh)
    out["padded_rows"] = Xp.shape[0]
    masked = sharding.fit_ppca(Xp, Q, mask=mask)
    out.update(odd_W=masked.W, odd_b=masked.b, odd_sigma2=masked.sigma2,
               odd_ll=sharding.ppca_mean_log_likelihood(masked, Xp, mask))
    mean, S = sharding.ppca_moments(Xp, mask)
    out.update(odd_mean=mean, odd_S=S)


def training_checks(out, base):
    """One process: data-parallel runs on a 2 x 2 mesh, the mistakes refused, the study's seeds split.
    Several processes: train_xor.py's runs split over both processes' devices, gathered, with progress."""
    import jax
    from jax.sharding import Mesh

    from lecture6 import runs, sharding, study
    from lecture6.data import xor

    key = jax.random.key(base.seed)
    if jax.process_count() > 1:
        progress = []
        xor_runs = runs.make_train_runs(train_config(base, XOR_RUNS), xor(), progress=lambda *a: progress.append(a),
                                        progress_every=XOR_RUNS["progress_every"])
        result, _ = runs.compile_and_run(xor_runs, key)  # what experiment.run_xor does before writing
        out.update(result_arrays("xor", result), xor_progress=np.array(progress).reshape(-1, 5),
                   xor_padded=xor_runs.seed.shape[0], xor_spec=str(xor_runs.seed.sharding.spec))
        return

    mesh = Mesh(sharding.make_mesh().devices.reshape(2, 2), (sharding.RUNS, sharding.DATA))
    dp_runs = runs.make_train_runs(train_config(base, DP_RUNS), xor(), mesh=mesh)
    out.update(result_arrays("dp", dp_runs.gather(dp_runs.train(key, dp_runs.seed, dp_runs.lr))),
               dp_layout=dp_runs.layout, dp_padded=dp_runs.seed.shape[0])
    compiled = dp_runs.train.lower(key, dp_runs.seed, dp_runs.lr).compile().as_text()
    out["dp_all_reduce"] = "all-reduce" in compiled  # the gradient's parts are summed over the data axis
    for name, fields in (("dp_refusal", {"batch_size": 3}), ("dp_seeds_last_refusal", {"layout": "seeds_last"})):
        try:  # refused while the program is built, before anything is compiled
            runs.make_train_runs(train_config(base, {**DP_RUNS, **fields}), xor(), mesh=mesh)
            out[name] = ""
        except ValueError as exc:
            out[name] = str(exc)

    # xor_study.py's program, its seeds split over the 4 devices and taken back as solvability_study does
    cells = [(a, w) for a in STUDY["activations"] for w in STUDY["widths"]]
    study_config = train_config(base, {**STUDY_CONFIG, "seeds": STUDY["seeds"]})
    arrays = study.make_study(study_config, cells, xor())(key)
    out["study_padded"] = arrays[0].shape[1]
    for k, a in zip(("solved", "final_loss", "diverged"), arrays):
        out[f"study_{k}"] = sharding.to_host(a)[:, :STUDY["seeds"]]


def training_reference(out, base):
    """The same training runs on one device, as the library runs them without a mesh."""
    import jax

    from lecture6 import runs, study
    from lecture6.data import xor

    assert jax.device_count() == 1, jax.devices()
    key = jax.random.key(base.seed)
    progress = []
    xor_runs = runs.make_train_runs(train_config(base, XOR_RUNS), xor(), progress=lambda *a: progress.append(a),
                                    progress_every=XOR_RUNS["progress_every"])
    dp_runs = runs.make_train_runs(train_config(base, DP_RUNS), xor())
    assert xor_runs.mesh is None and dp_runs.mesh is None  # one device: nothing split
    out.update(result_arrays("xor", xor_runs.gather(xor_runs.train(key, xor_runs.seed, xor_runs.lr))))
    jax.effects_barrier()
    out["xor_progress"] = np.array(progress).reshape(-1, 5)
    out.update(result_arrays("dp", dp_runs.gather(dp_runs.train(key, dp_runs.seed, dp_runs.lr))))
    cells = [(a, w) for a in STUDY["activations"] for w in STUDY["widths"]]
    arrays = study.make_study(train_config(base, {**STUDY_CONFIG, "seeds": STUDY["seeds"]}), cells, xor())(key)
    for k, a in zip(("solved", "final_loss", "diverged"), arrays):
        out[f"study_{k}"] = np.asarray(a)


def main(argv):
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")

    from lecture6 import rundir

    out = {"process_count": jax.process_count(), "device_count": jax.device_count(),
           "local_device_count": jax.local_device_count(), "written_by": jax.process_index()}
    if _REFERENCE.value:
        training_reference(out, _CONFIG.value)
    else:
        ppca_checks(out)
        training_checks(out, _CONFIG.value)

    # Every value is replicated or gathered, so any process may write it; as in every script, the
    # workdir is process 0's (the others write into a scratch directory that is removed).
    with rundir.atomic_workdir(_OUTDIR.value) as tmp:
        np.savez(os.path.join(tmp, "results.npz"), **{k: np.asarray(v) for k, v in out.items()})


if __name__ == "__main__":
    from lecture6 import rundir

    _CONFIG = config_flags.DEFINE_config_file("config", None, "the XOR config", lock_config=True)
    _OUTDIR = flags.DEFINE_string("outdir", None, "where process 0 writes results.npz")
    _REFERENCE = flags.DEFINE_bool("reference", False, "compute the training references on one device instead")
    rundir.run(main, XOR_CONFIG)
