"""Fit probabilistic PCA three ways on one data set and write metrics and plots.

    python scripts/fit_ppca.py --config configs/ppca.py --config.dataset=digits --config.q=10 \
        --workdir runs/ppca

Any config field can be overridden (``--config.dataset=faces --config.em_iters=3000``). See
``lecture6.experiment.run_ppca`` for what the workdir holds (replaced as a whole, only once everything
is written).
"""

import os

from lecture6.experiment import run_ppca
from lecture6.rundir import script_main

if __name__ == "__main__":
    configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
    script_main(run_ppca, os.path.join(configs, "ppca.py"), "runs/ppca")
