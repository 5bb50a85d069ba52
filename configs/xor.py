"""XOR: the lecture's 3-layer network (2 inputs, 2 ReLU hidden units, 1 linear output) trained by
plain gradient descent on f_MSE, p <- p - eps df/dp, full batch, from many random seeds at once.

    python scripts/train_xor.py --config configs/xor.py --config.seeds=10000 --workdir runs/xor

What it should reach: with 10,000 seeds the training itself takes about 0.2 s on a 2-core CPU
(about 1e8 seed-steps per second), after under a second of compiling. With 2 hidden ReLU units, He init, zero
biases and eps = 0.1, only about a quarter of the seeds solve XOR (all four outputs within 0.5 of
their targets) within 2000 epochs: the rest get stuck -- the slide's warning that small networks can
fail. With --config.width=8 most seeds solve it; --config.activation=identity never does.
"""

import pathlib
import runpy

base_train = runpy.run_path(str(pathlib.Path(__file__).with_name("base_train.py")))


def get_config():
    return base_train["get_config"]()  # the base config is the XOR network
