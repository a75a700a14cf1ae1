# Two entry points, each creating the environment on first use:
#   make bench   runs the retrieval suite on the embedded default data
#   make test    runs the test suite
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: bench test install

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

bench: install
	$(BIN)/python -m benchmarks.run --suite retrieval

test: install
	$(BIN)/python -m pytest -n 2 -q
