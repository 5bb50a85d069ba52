"""Probabilistic PCA on image data: fit by closed form, EM and gradient ascent, then plot.

Run:
    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=digits --config.q=10 \
        --workdir runs/ppca

What it should reach (digits, q=10, seed 0): all three methods agree on the average training
log-likelihood to ~1e-6 nats/sample (about 17.6), their subspaces agree (largest principal angle
< 1e-3 rad), the held-out log-likelihood is about 16.6 nats/sample, and the held-out curve over q
peaks well above q=10. Faces (``--config.dataset=faces``, 100 images of 25x25) overfit quickly:
the held-out curve peaks at a small q.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "digits"  # digits | faces | mnist | synthetic
    config.mnist_path = ""  # directory with the MNIST IDX files, for dataset=mnist
    config.q = 10  # latent dimensions
    config.seed = 0
    config.test_fraction = 0.2
    config.em_iters = 300
    config.gradient_steps = 1000
    config.learning_rate = 0.05  # Adam, in units of the data's RMS deviation
    config.q_grid = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40)  # held-out log-likelihood curve
    config.n_samples = 32  # images in the samples grid
    return config
