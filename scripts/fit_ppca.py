"""Fit probabilistic PCA three ways on one data set and write metrics and plots.

    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=digits --config.q=10 \
        --workdir runs/ppca

Any config field can be overridden (``--config.dataset=faces --config.em_iters=3000``). See
``lecture6.experiment.run_ppca`` for what the workdir holds (replaced as a whole, only once everything
is written).
"""

import pathlib

from absl import flags
from ml_collections import config_flags

from lecture6 import experiment, rundir

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "ppca.py")
_CONFIG = config_flags.DEFINE_config_file("config", None, f"config file (default {CONFIG})", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/ppca", "output directory (replaced whole, once complete)")


def main(argv):
    experiment.run_ppca(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    rundir.run(main, CONFIG)
