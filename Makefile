# Two commands on a fresh machine: `make repro` and `make test` (both create .venv on first use).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN := PATH=$(abspath $(BIN)):$$PATH

.PHONY: install repro test smoke-cifar bench-smoke compare results readme bench clean-venv plots-page

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Also the offline `dvc plots show` page (plots-page) where npm is found; without it, or when npm
# cannot reach its registry, DVC's default page stays (its charts need a network to draw).
install: $(STAMP)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory plots-page || echo "plots-page failed: dvc plots show keeps DVC's default page"; \
	else echo "npm not found: dvc plots show keeps DVC's default page (its charts load vega from a CDN)"; fi

# The `dvc plots show` page with vega, vega-lite and vega-embed inline, so every chart draws offline:
# npm installs plots_page/package-lock.json's exact versions, tools/plots_template.py writes the
# template, and .dvc/config.local points DVC at it. `python -m tools.plots_page` checks the page.
PLOTS_PAGE := build/plots_page/template.html
$(PLOTS_PAGE): plots_page/package.json plots_page/package-lock.json tools/plots_template.py | $(STAMP)
	cd plots_page && npm ci --no-audit --no-fund --ignore-scripts
	$(BIN)/python -m tools.plots_template plots_page/node_modules $@

plots-page: $(PLOTS_PAGE)
	$(BIN)/dvc config --local plots.html_template ../$(PLOTS_PAGE)

# The embedded default pipeline (params.yaml).
repro: install
	$(RUN) $(BIN)/dvc repro

# ruff, then unit tests and the end-to-end dvc runs on the micro profile (under 5 minutes once installed), on
# the CPU, one pytest-xdist worker per core; then, where nvidia-smi is found, the CUDA tests, which
# the rest of the suite hides CUDA from.
test: $(STAMP)
	$(BIN)/ruff check .
	$(RUN) $(BIN)/python -m pytest -q -n auto
	@if command -v nvidia-smi >/dev/null; then $(RUN) LINES_MODEL_TEST_CUDA=1 $(BIN)/python -m pytest -q tests/test_cuda.py; fi

# The CIFAR-10 profile as a real `dvc repro` at micro scale on the CPU (a few minutes).
smoke-cifar: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q -s -m smoke_cifar tests/test_smoke_cifar.py

# Every benchmark section and the GPU probe at toy sizes: their code paths, not their numbers (under a minute).
bench-smoke: $(STAMP)
	$(RUN) $(BIN)/python -m pytest -q -m bench_smoke tests/test_bench_smoke.py

# Seed replicates of Lines vs the baseline: the compare/dvc.yaml pipeline (first bringing the stages
# it reads up to date), metrics/compare.json; `dvc status` says when it is stale. The table again:
# python -m stages.compare --show.
compare: $(STAMP)
	$(RUN) $(BIN)/dvc repro compare/dvc.yaml

# The results table (the README's) from metrics/evaluate.json.
results: $(STAMP)
	$(RUN) $(BIN)/python -m lines_model results

# The README's tables and findings, rewritten from metrics/ (after `dvc repro` or `make compare`);
# the suite fails while they differ.
readme: $(STAMP)
	$(RUN) $(BIN)/python -m tools.readme

bench: $(STAMP)
	$(RUN) $(BIN)/python benchmarks/run.py

clean-venv:
	rm -rf $(VENV)
