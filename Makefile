# Two commands get a newcomer running:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test audit bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,data]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m lecture6.audit
	$(PY) scripts/train_xor.py --config configs/xor.py --workdir runs/xor
	$(PY) scripts/train_digits.py --config configs/digits.py --workdir runs/digits

test: $(STAMP)
	$(PY) -m pytest

audit: $(STAMP)
	$(PY) -m lecture6.audit

lint: $(STAMP)
	$(PY) -m ruff check lecture6 scripts tests benchmarks configs

clean:
	rm -rf $(VENV) runs
