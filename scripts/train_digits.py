"""Train the lecture's 3-layer ReLU softmax network on the 8x8 digits (minibatch SGD) and write a run directory.

    python scripts/train_digits.py --config configs/digits.py --workdir runs/digits

Any config field can be overridden (``--config.width=128 --config.epochs=50``). See
``lecture6.experiment.run_digits`` for what the workdir holds.
"""

import os

from lecture6.experiment import run_digits
from lecture6.rundir import script_main

if __name__ == "__main__":
    configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
    script_main(run_digits, os.path.join(configs, "digits.py"), "runs/digits")
