# Two commands on a fresh machine: `make repro` and `make test` (both create .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := PATH=$(abspath $(BIN)):$$PATH

.PHONY: install repro test smoke-cifar compare results bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The embedded default pipeline (params.yaml).
repro: $(STAMP)
	$(RUN) $(BIN)/dvc repro

# Unit tests and the end-to-end dvc runs on the micro profile (under 5 minutes once installed).
test: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q

# The CIFAR-10 profile as a real `dvc repro` at micro scale on the CPU (a few minutes).
smoke-cifar: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q -s -m smoke_cifar tests/test_smoke_cifar.py

# Seed replicates of Lines vs the baseline (after `make repro`): metrics/compare.json.
compare: $(STAMP)
	$(RUN) $(BIN)/python -m tools.compare

# The results table (the README's) from metrics/evaluate.json.
results: $(STAMP)
	$(RUN) $(BIN)/python -m lines_model results

bench: $(STAMP)
	$(RUN) $(BIN)/python benchmarks/run.py

clean-venv:
	rm -rf $(VENV)
