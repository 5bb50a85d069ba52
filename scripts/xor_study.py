"""The XOR solvability study: success rate of gradient descent by hidden width and activation.

    python scripts/xor_study.py --config configs/xor.py --seeds 10000 --outdir runs/xor_study

Trains ``--seeds`` networks for every width in ``--widths`` and activation in ``--activations`` (every
other field from the config: init, lr, epochs, ...), then writes ``study.md`` and ``study.csv`` (success
rates with 95% Wilson intervals) and ``success_vs_width.png`` into ``--outdir``.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lecture6.experiment import SCRIPT_FIELDS, check_overrides
from lecture6.study import ACTIVATIONS, WIDTHS, solvability_study, write_study

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "xor.py")

if __name__ == "__main__":
    check_overrides(sys.argv[1:], DEFAULT_CONFIG)

_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "base training config file")
_SEEDS = flags.DEFINE_integer("seeds", 10000, "networks per (width, activation)")
_WIDTHS = flags.DEFINE_list("widths", [str(w) for w in WIDTHS], "hidden widths")
_ACTS = flags.DEFINE_list("activations", list(ACTIVATIONS), "hidden activations")
_OUTDIR = flags.DEFINE_string("outdir", "runs/xor_study", "where to write the table and plot")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # keep JAX's backend INFO lines out of the output
    base = {k: v for k, v in _CONFIG.value.to_dict().items() if k not in SCRIPT_FIELDS}
    try:
        widths = [int(w) for w in _WIDTHS.value]
        rows = solvability_study(base, widths=widths, activations=_ACTS.value, seeds=_SEEDS.value,
                                 log=lambda s: print(s, flush=True))
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    header = (f"XOR solved (all four outputs within 0.5) after {base['epochs']} epochs of full-batch "
              f"{base['optimizer']} (lr {base['lr']}), init {base['init']} (scale {base['init_scale']}), "
              f"bias init {base['bias_init']}, {_SEEDS.value} seeds per cell; 95% Wilson intervals.")
    paths = write_study(rows, _OUTDIR.value, header=header)
    with open(paths["md"]) as f:
        print(f.read())
    print(f"wrote {', '.join(paths.values())}")


if __name__ == "__main__":
    app.run(main)
