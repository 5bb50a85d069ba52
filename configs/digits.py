"""Digits: the lecture's last slide -- a 3-layer ReLU network with a softmax output trained with
cross-entropy -- on scikit-learn's 8x8 handwritten digits (64 pixels, 10 classes; shipped with
scikit-learn, no download), by minibatch SGD (the slide's "for each epoch, for each minibatch").

    python scripts/train_digits.py --config configs/digits.py --workdir runs/digits

What it should reach: about 96% test accuracy (20% of the 1797 images held out) after 60 epochs,
every seed, in a few seconds on a 2-core CPU.

On several devices the seeds are split over them; ``--config.data_parallel=True`` splits each
minibatch of 32 over them instead (the device count must divide 32), the gradient summed across devices.
"""

import pathlib
import runpy

base_train = runpy.run_path(str(pathlib.Path(__file__).with_name("base_train.py")))


def get_config():
    c = base_train["get_config"]()
    c.test_fraction = 0.2  # the one field the base lacks: the held-out share of the images
    c.lock()  # from here on a mistyped field name is an error, not a new field
    c.width = 64  # 64 -> 64 ReLU -> 10
    c.loss = "softmax_ce"  # the output layer gives logits; softmax inside the loss
    c.epochs = 60
    c.batch_size = 32
    c.seeds = 4
    c.log_every = 1
    c.progress_every = 10
    return c
