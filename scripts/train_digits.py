"""Train the lecture's 3-layer ReLU softmax network on handwritten digits (minibatch SGD) and write a run directory.

    python scripts/train_digits.py --config configs/digits.py --workdir runs/digits
    python scripts/train_digits.py --config configs/digits.py --config.dataset=mnist --workdir runs/softmax_mnist

Any config field can be overridden (``--config.width=128 --config.epochs=50``). See
``lecture6.experiment.run_digits`` for what the workdir holds.
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from lecture6 import experiment, rundir

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "digits.py")
_CONFIG = config_flags.DEFINE_config_file("config", None, f"config file (default {CONFIG})", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/digits", "output directory (replaced whole, once complete)")


def main(argv):
    experiment.run_digits(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    rundir.run(main, CONFIG)
