# Two entry points, each doing its own set-up on a fresh machine:
#   make demo   - install signoff in .venv and run a held-call demo end to end
#   make test   - install signoff, the test servers (PyPI + npm); lint (ruff), type-check (mypy), run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/python examples/demo.py

test: $(BIN)/.installed node_modules/.installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) node_modules
