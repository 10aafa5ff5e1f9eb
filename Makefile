# Every target creates or reuses the virtualenv in .venv and installs exactly uv.lock into
# it; nothing is installed by hand. docs/development.md explains each target.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed
LATEST := .venv-latest
# uv installs the lock; it is itself in the lock (the dev extra), at this version.
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock 2>/dev/null)

.PHONY: install demo test test-travel test-latest check lock upgrade bench clean

# The venv gets no pip of its own (uv installs everything after uv itself): the host's pip
# puts uv into it, which saves the seconds ensurepip takes.
$(UV):
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check \
	  "uv$(if $(UV_VERSION),==$(UV_VERSION))"

# A lock that was not made from pyproject.toml as it is (or no lock) stops every target
# here, naming the difference (scripts/lock_check.py); `make lock` makes a new one.
$(STAMP): pyproject.toml $(wildcard uv.lock) | $(UV)
	@$(UV) lock --check --offline --quiet 2>/dev/null || { \
	  $(BIN)/python -c "import packaging" 2>/dev/null && $(BIN)/python -m scripts.lock_check; \
	  echo "pyproject.toml and uv.lock disagree (or uv.lock is missing): run 'make lock'" >&2; \
	  exit 1; }
	$(UV) sync --frozen --extra dev --quiet
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m worker.demo

# The whole suite at the test clock's instant, then the calendar-sensitive tests
# (marker `travel`) at two travelled instants (tests/clock.py: TRAVEL_IN_CI).
test: $(STAMP)
	$(BIN)/python -m tests.prepare
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m tests.travel --subset $(PYTEST_ARGS)

# The whole suite at every instant of tests/clock.py: TRAVEL (not part of CI: ~1 h).
test-travel: $(STAMP)
	$(BIN)/python -m tests.prepare
	$(BIN)/python -m tests.travel $(PYTEST_ARGS)

# The newest versions pyproject.toml allows, in a venv of their own, to meet upstream
# breakage on purpose. Changes neither uv.lock nor .venv.
test-latest: | $(UV)
	@test -x $(LATEST)/bin/python || $(PYTHON) -m venv --without-pip $(LATEST)
	$(UV) pip install --quiet --python $(LATEST)/bin/python --upgrade --reinstall-package outreach -e '.[dev]'
	$(LATEST)/bin/python -m tests.prepare
	$(LATEST)/bin/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/python -m scripts.lock_check
	$(BIN)/python -m scripts.wall_clock
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy suppression campaigns worker

# Re-resolve after changing a dependency in pyproject.toml; commit both files.
lock: | $(UV)
	$(UV) lock
	$(UV) sync --frozen --extra dev --quiet
	@touch $(STAMP)

# The newest versions pyproject.toml allows, into the lock; run `make test`, then commit.
upgrade: | $(UV)
	$(UV) lock --upgrade
	$(UV) sync --frozen --extra dev --quiet
	@touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.normalize
	$(BIN)/python -m benchmarks.screen
	$(BIN)/python -m benchmarks.launch
	$(BIN)/python -m benchmarks.rekey
	$(BIN)/python -m benchmarks.pipeline

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache .mypy_cache .ruff_cache
