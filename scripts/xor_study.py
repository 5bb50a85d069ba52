"""The XOR solvability study: success rate of gradient descent by hidden width and activation.

    python scripts/xor_study.py --config configs/xor.py --seeds 10000 --outdir runs/xor_study

Trains ``--seeds`` networks for every width in ``--widths`` and activation in ``--activations`` (every
other field from the config: init, lr, epochs, ...), in one compiled program per width, then writes
``study.md`` and ``study.csv`` (success rates with 95% Wilson intervals), ``success_vs_width.png`` and
``summary.json`` (the rows, compile and train seconds) into ``--outdir``. On a CPU the seeds are split
over one JAX device per core (``--host_devices``), each core training its share; the table is the same
for any number of devices. A rerun compiles little: programs are kept in ``.cache/jax``.

Interrupted and rerun. Each width's rows are written to ``--outdir/cells/width_W.json`` the moment that
width is trained; the same command run again on the same ``--outdir`` reuses those blocks (it says which)
and trains only the rest. A block written by another study (other config fields, seeds, activations) is
refused with the fields that differ, unless ``--replace_stale`` (recompute it). The four final files
appear only when every width is done (``summary.json`` last); a run that has to train anything first
removes those of an earlier run.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from lecture6 import distributed, rundir, sharding, study

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "xor.py")
_CONFIG = config_flags.DEFINE_config_file("config", None, f"base training config (default {CONFIG})",
                                          lock_config=True)
_SEEDS = flags.DEFINE_integer("seeds", 10000, "networks per (width, activation)")
_WIDTHS = flags.DEFINE_list("widths", [str(w) for w in study.WIDTHS], "hidden widths")
_ACTS = flags.DEFINE_list("activations", list(study.ACTIVATIONS), "hidden activations")
_OUTDIR = flags.DEFINE_string("outdir", "runs/xor_study", "where to write the table, plot and timings")
_HOST_DEVICES = flags.DEFINE_integer(
    "host_devices", sharding.available_cores(),
    "CPU devices JAX shows (XLA_FLAGS --xla_force_host_platform_device_count; default one per core), the "
    "seeds split over them; ignored if XLA_FLAGS sets a count, and on accelerators")
_REPLACE = flags.DEFINE_bool("replace_stale", False,
                             "recompute the cell blocks in --outdir/cells that another study wrote (default: refuse)")


def main(argv):
    config = _CONFIG.value
    try:
        widths = [int(w) for w in _WIDTHS.value]
    except ValueError:
        raise ValueError(f"--widths = {_WIDTHS.value} is invalid: expected integers") from None
    rows, timing = study.solvability_study(config, widths=widths, activations=_ACTS.value, seeds=_SEEDS.value,
                                           log=lambda s: print(s, flush=True), outdir=_OUTDIR.value,
                                           replace_stale=_REPLACE.value)
    header = (f"XOR solved (all four outputs within 0.5) after {config.epochs} epochs of full-batch "
              f"{config.optimizer} (lr {config.lr}), init {config.init} (scale {config.init_scale}), "
              f"bias init {config.bias_init}, {_SEEDS.value} seeds per cell; 95% Wilson intervals.")
    if distributed.is_writer():  # with several processes, process 0 alone writes
        paths = study.write_study(rows, _OUTDIR.value, header=header, timing=timing)
        print(pathlib.Path(paths["md"]).read_text())
        print(f"wrote {', '.join(paths.values())}")


if __name__ == "__main__":
    rundir.run(main, CONFIG, before_jax=lambda: sharding.split_host_cpu(_HOST_DEVICES.value))
