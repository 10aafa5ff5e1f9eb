# Every target creates or reuses the virtualenv in .venv; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m worker.demo

test: $(STAMP)
	$(BIN)/python -m tests.prepare
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy suppression campaigns worker

bench: $(STAMP)
	$(BIN)/python -m benchmarks.normalize
	$(BIN)/python -m benchmarks.screen
	$(BIN)/python -m benchmarks.launch
	$(BIN)/python -m benchmarks.pipeline

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
