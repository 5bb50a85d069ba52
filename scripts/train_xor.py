"""Train the lecture's XOR network from many seeds at once and write a run directory.

    python scripts/train_xor.py --config configs/xor.py --config.seeds=10000 --workdir runs/xor

Any config field can be overridden (``--config.width=4 --config.activation=tanh``). See
``lecture6.experiment.run_xor`` for what the workdir holds.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from lecture6 import experiment, rundir

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "xor.py")
_CONFIG = config_flags.DEFINE_config_file("config", None, f"config file (default {CONFIG})", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/xor", "output directory (replaced whole, once complete)")


def main(argv):
    experiment.run_xor(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    rundir.run(main, CONFIG)
