"""Train the lecture's 3-layer ReLU softmax network on the 8x8 digits (minibatch SGD) and write a run directory.

    python scripts/train_digits.py --config configs/digits.py --workdir runs/digits

Any config field can be overridden (``--config.width=128 --config.epochs=50``). See
``lecture6.experiment.run_digits`` for what the workdir holds.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from lecture6.experiment import check_overrides, run_digits

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "digits.py")
if __name__ == "__main__":
    # before the flag is defined: ml_collections applies --config.<field> overrides while defining it,
    # and reports an unknown field as a long traceback
    check_overrides(sys.argv[1:], DEFAULT_CONFIG)

_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "training config file")
_WORKDIR = flags.DEFINE_string("workdir", "runs/digits", "where to write the run")


def main(argv):
    del argv
    try:
        run_digits(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))
    except ValueError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    app.run(main)
