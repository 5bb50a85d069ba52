"""Every training field, with the values of the lecture's XOR network: 2 inputs, 2 ReLU hidden units,
1 linear output, f_MSE, plain gradient descent p <- p - eps df/dp (eps 0.1) on all four points, from
1,000 random seeds. ``configs/xor.py`` and ``configs/digits.py`` start from this and change a few fields;
``lecture6.train.check_config`` says what each field may hold.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # The network: d -> width (x depth) -> n_out.
    c.width = 2  # hidden units per hidden layer
    c.depth = 1  # hidden layers: the 3-layer network of the slides
    c.activation = "relu"
    c.loss = "mse"  # or "softmax_ce" (the output layer gives logits)
    c.init = "he"  # W ~ N(0, 2 / n_in); "glorot", "normal" (std = init_scale)
    c.init_scale = 1.0
    c.bias_init = 0.0
    # The update.
    c.optimizer = "sgd"  # the slide's p <- p - eps grad; also "momentum", "adam"
    c.lr = 0.1
    c.lrs = ()  # a grid of learning rates run side by side (empty: just lr)
    c.momentum = 0.9  # for optimizer="momentum"
    c.grad = "autodiff"  # or "hand": Algorithm 6.4
    # The loop.
    c.epochs = 2000
    c.batch_size = 4  # >= the number of examples: full batch
    c.seeds = 1000
    c.seed = 0
    c.dtype = "float32"
    c.log_every = 10  # epochs between history records
    c.layout = "auto"  # how the runs sit side by side: "vmap", "seeds_last" or "auto"
    c.progress_every = 500  # epochs between progress lines (0: none)
    # Several devices: the runs are split over them; True splits each minibatch over them instead.
    c.data_parallel = False
    return c
