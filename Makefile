# Entry points, each creating the environment on first use:
#   make bench    runs the retrieval suite on the embedded default data
#   make test     runs the test suite
#   make regress  runs the quick configs and fails if a method got worse than its committed baseline
#   make check-recipes  dry-runs every full-scale recipe on generated data in its official format (a few minutes)
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: bench test regress check-recipes install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install --quiet -e ".[test,cluster]"
	touch $@

bench: install
	$(BIN)/python -m benchmarks.run --suite retrieval

test: install
	$(BIN)/python -m pytest -n 2 -q

regress: install
	$(BIN)/python -m benchmarks.regress --baseline results/baselines/quick_retrieval.csv

check-recipes: install
	$(BIN)/python -m benchmarks.check_recipes
