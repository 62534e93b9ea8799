# Slipway: two commands.
#   make run   set up, then serve the web UI on http://localhost:8000/
#   make test  set up, then ruff and pytest
# Setup is idempotent: a second run only checks and takes seconds.

PYTHON ?= python3
HOST ?= 0.0.0.0
PORT ?= 8000

VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS_STAMP := $(VENV)/.requirements-stamp

# Extra setup targets, run in order after the Python environment and the
# database are ready. Add one with `SETUP_STEPS += images` and a rule for it.
SETUP_STEPS ?= images
HUB_LISTEN ?= 127.0.0.1:5000

# Run recipes one at a time, even under `make -j`: setup steps depend on order.
.NOTPARALLEL:

.PHONY: run test setup apt migrate bytecode cli images lint clean

run: setup
	@echo "Slipway: the hub serves the base images on http://$(HUB_LISTEN)/v2/"
	@echo "Slipway: serving on http://localhost:$(PORT)/ (Ctrl-C stops it)"
	@$(BIN)/python -m simulator.hub serve --listen $(HUB_LISTEN) --quiet & hub=$$!; \
	trap 'kill $$hub 2>/dev/null' EXIT INT TERM; \
	$(BIN)/daphne -b $(HOST) -p $(PORT) webui.asgi:application

test: setup lint
	$(BIN)/pytest

lint: $(REQUIREMENTS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

setup: apt $(REQUIREMENTS_STAMP) migrate bytecode cli $(SETUP_STEPS)

# Debian packages: installs only those missing; quick when none is.
apt:
	@scripts/install-apt-packages.sh scripts/apt-packages.txt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(REQUIREMENTS_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

# The runtime starts a Python process per container: keep its bytecode compiled, even
# where PYTHONDONTWRITEBYTECODE is set. Quick when nothing changed.
bytecode: $(REQUIREMENTS_STAMP)
	$(BIN)/python -m compileall -q simulator

# Slipway's own docker CLI as a command: .venv/bin/docker runs python -m simulator.cli.
# On PATH only when the venv is activated; tests find the real CLI 28 by what it is.
cli: $(BIN)/docker

$(BIN)/docker: Makefile | $(BIN)/python
	printf '#!/bin/sh\n# Slipway'"'"'s docker CLI, written by make setup.\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec "%s" -m simulator.cli "$$@"\n' \
		"$(CURDIR)" "$(CURDIR)/$(BIN)/python" > $@
	chmod 755 $@

# The base images, built offline into the hub (python -m simulator.hub build). Cached:
# a second run only checks that every tag is published from the current recipes.
images: $(REQUIREMENTS_STAMP) bytecode
	$(BIN)/python -m simulator.hub build

migrate: $(REQUIREMENTS_STAMP)
	$(BIN)/python manage.py migrate --noinput

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
