"""Checks that need several devices, run by tests/test_sharding.py in a subprocess (so the rest of the suite
keeps one device): once as one process with 4 CPU devices, once under ``lecture6.launch`` as 2 processes
x 2 devices. Process 0 writes what it computed to ``OUTDIR/results.npz``; the test compares it with
references computed independently (NumPy, one device) in the test process.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multidevice_checks.py OUTDIR
    python -m lecture6.launch --processes 2 --devices-per-process 2 -- tests/multidevice_checks.py OUTDIR
"""

import os
import sys

import numpy as np

N_EVEN, N_ODD, D, Q = 200, 203, 6, 2


def make_data(n=N_ODD, d=D, seed=0):
    """Correlated rows with a mean far from zero (so a wrong mean or a dropped row shows)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + 3.0 + np.arange(d)[None, :]


def main(outdir):
    from lecture6 import distributed

    distributed.initialize()

    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")

    from lecture6 import ppca, sharding

    out = {"process_count": jax.process_count(), "device_count": jax.device_count(),
           "local_device_count": jax.local_device_count()}
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

    # Every value is replicated, so any process may read it; process 0 alone writes.
    if distributed.is_writer():
        os.makedirs(outdir, exist_ok=True)
        values = {k: np.asarray(v) for k, v in out.items()}
        np.savez(os.path.join(outdir, ".results.tmp.npz"), **values)
        os.replace(os.path.join(outdir, ".results.tmp.npz"), os.path.join(outdir, "results.npz"))


if __name__ == "__main__":
    main(sys.argv[1])
