# spondybot: `make run` starts the bot, `make test` runs every check. Only Python 3.11+ needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every dependency pinned, for Python 3.11 on Linux: CI and a clinic install the same versions.
# After changing the dependencies in pyproject.toml, regenerate it with `make lock`.
LOCK := requirements.lock
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check --no-input

.PHONY: run test lint demo bench install lock wheel clean catalogs

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || { echo "spondybot: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "spondybot: installing the pinned dependencies ($(LOCK))"
	@$(PIP) install --requirement $(LOCK)
	@echo "spondybot: installing spondybot"
	@$(PIP) install --no-deps --editable .
	@touch $(STAMP)

install: $(STAMP)

lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP) install "uv>=0.5,<1"
	@$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 \
		--python-platform linux --output-file $(LOCK)
	@echo "spondybot: $(LOCK) written; run make install to use it"

# Extracts the messages of templates/messages/ into templates/locale/messages.pot and updates
# every language's catalog; then reports what a translator still has to do.
catalogs: $(STAMP)
	@$(BIN)/python -m bot.present.catalogs

wheel: $(STAMP)
	@echo "spondybot: building the wheel in dist/"
	@$(PIP) wheel --no-deps --wheel-dir dist .

run: $(STAMP)
	@$(BIN)/spondybot db upgrade
	@$(BIN)/spondybot run; status=$$?; [ $$status -eq 3 ] || exit $$status

demo: $(STAMP)
	@$(BIN)/spondybot demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache
