"""Train the lecture's XOR network from many seeds at once and write a run directory.

    python scripts/train_xor.py --config configs/xor.py --config.seeds=10000 --workdir runs/xor

Any config field can be overridden (``--config.width=4 --config.activation=tanh``). See
``lecture6.experiment.run_xor`` for what the workdir holds.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from lecture6.experiment import check_overrides, run_xor

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "xor.py")
if __name__ == "__main__":
    # before the flag is defined: ml_collections applies --config.<field> overrides while defining it,
    # and reports an unknown field as a long traceback
    check_overrides(sys.argv[1:], DEFAULT_CONFIG)

_CONFIG = config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "training config file")
_WORKDIR = flags.DEFINE_string("workdir", "runs/xor", "where to write the run")


def main(argv):
    del argv
    try:
        run_xor(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))
    except ValueError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    app.run(main)
