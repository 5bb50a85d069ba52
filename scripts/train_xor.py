"""Train the lecture's XOR network from many seeds at once and write a run directory.

    python scripts/train_xor.py --config configs/xor.py --config.seeds=10000 --workdir runs/xor

Any config field can be overridden (``--config.width=4 --config.activation=tanh``). See
``lecture6.experiment.run_xor`` for what the workdir holds.
"""

import os

from lecture6.experiment import run_xor
from lecture6.rundir import script_main

if __name__ == "__main__":
    configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
    script_main(run_xor, os.path.join(configs, "xor.py"), "runs/xor")
