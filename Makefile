# bocli: every target creates the virtual environment on first use (only Python 3.11+ needed).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first: otherwise a dependency's "torch" pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## demo: optimize Branin with the exact GP and expected improvement (about a minute)
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/bocli run branin --surrogate gp --acquisition ei --budget 25 --seed 0 --out runs/demo
	@echo "every evaluation is in runs/demo/trials.csv"

## test: the default suite (tests marked slow are left to test-slow; CI runs both)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-slow: the heavy end-to-end tests (HMC sampling, BO quality, long grids, PFN BO)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bocli surrogates problems tests benchmarks
	$(BIN)/ruff format --check bocli surrogates problems tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_suggest.py

clean:
	rm -rf $(VENV) runs .pytest_cache
