# Set-up, serving and tests. `make run` and `make test` are the two commands in the README.
# `make test` lints first (ruff, and import-linter for the import rule of docs/architecture.md;
# settings in pyproject.toml), so CI (.ci/run) lints too.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
ADMIN ?= admin
POSTGRES_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# pytest-xdist: one worker process per CPU (on PostgreSQL each worker gets its own database,
# created beside POSTGRES_TEST_URL's); PYTEST_ARGS="-n 0" runs the suite in one process.
# worksteal: a worker that runs out of tests takes half of another's queue, so none idles while
# the other still has a queue (and conftest starts the slow tests first, not last).
PYTEST_ARGS ?= -n auto --dist worksteal

.PHONY: run lint test test-postgres install install-test schema

# --no-compile: pip would byte-compile every installed module (torch's thousands) up front,
# about 25 s of a fresh set-up; Python compiles the modules it imports on first use instead.
PIP_INSTALL = $(BIN)/pip install --quiet --no-compile

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: this version is a CPU build on local disk; a looser spec downloads GBs.
install: $(BIN)/python
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e .

install-test: $(BIN)/python
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[test]'

# Set everything up on the embedded SQLite default and start the server (and its job worker).
run: install
	$(BIN)/supervising-ui init --admin $(ADMIN)
	$(BIN)/supervising-ui serve --host $(HOST) --port $(PORT)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The same suite against PostgreSQL (needs a server at POSTGRES_TEST_URL).
test-postgres: install-test
	SUPERVISING_UI_TEST_DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Until the first release, the schema is one migration: regenerate it after editing models.py.
schema: $(BIN)/python
	rm -f supervising_ui/migrations/versions/0001_initial_schema.py
	tmp=$$(mktemp -d) && SUPERVISING_UI_INSTANCE=$$tmp $(BIN)/supervising-ui db revision --autogenerate -m "initial schema" --rev-id 0001
