# Two set-up commands for a fresh machine: `make demo` and `make test`; `make test-fast` while editing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalled whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# notebooks/ (tracked) is where JupyterLab opens the report and comparison notebooks
demo: $(VENV)/.installed
	$(BIN)/evallib demo

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# one pytest worker per core (at most 4); a test file's tests stay on one worker, sharing its fixtures; the files
# are handed out in collection order, which conftest.py starts with the longest ones
PYTEST_WORKERS := -n auto --maxprocesses=4 --dist loadfile --no-loadscope-reorder

# lint and type checks first (configured in pyproject.toml), then the tests
test: $(VENV)/.installed chromium
	$(BIN)/ruff check evallib tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS)

# no notebook kernel, no browser, no cluster, no wheel build (tests marked slow): under a minute.
# This -m replaces the one in pyproject's addopts, so it leaves out full_matrix too.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(PYTEST_WORKERS) -m "not slow and not full_matrix"

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf build outputs
