"""XOR: the lecture's 3-layer network (2 inputs, 2 ReLU hidden units, 1 linear output) trained by
plain gradient descent on f_MSE, p <- p - eps df/dp, full batch, from many random seeds at once.

    python scripts/train_xor.py --config configs/xor.py --config.seeds=10000 --workdir runs/xor

What it should reach: with 10,000 seeds the training itself takes about 0.2 s on a 2-core CPU
(about 1e8 seed-steps per second), after under a second of compiling. With 2 hidden ReLU units, He init, zero
biases and eps = 0.1, only about a quarter of the seeds solve XOR (all four outputs within 0.5 of
their targets) within 2000 epochs: the rest get stuck, most with a dead hidden unit -- the slide's
warning that small networks can fail. With --config.width=8 most seeds solve it;
--config.activation=identity never does.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.width = 2  # hidden units
    c.depth = 1  # hidden layers: the 3-layer network of the slides
    c.activation = "relu"
    c.loss = "mse"
    c.init = "he"  # W ~ N(0, 2 / n_in)
    c.init_scale = 1.0
    c.bias_init = 0.0
    c.optimizer = "sgd"  # the slide's p <- p - eps grad; also "momentum", "adam"
    c.lr = 0.1
    c.lrs = ()  # a grid of learning rates to run side by side (empty: just lr)
    c.momentum = 0.9
    c.epochs = 2000
    c.batch_size = 4  # all four points: full-batch gradient descent
    c.seeds = 1000
    c.grad = "autodiff"  # or "hand": Algorithm 6.4
    c.seed = 0
    c.dtype = "float32"
    c.log_every = 10  # epochs between history records
    c.layout = "auto"
    c.seed_block = 0
    c.progress_every = 500  # epochs between progress lines (0: none)
    return c
