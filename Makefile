# fedcloud — every target does its own set-up on a fresh Debian 12 machine (as root).
#   make demo   the main job: install the local cloudlet with the cloudlet-install runbook
#               (headless, archived), then a ticket becomes an instance on it (scripts/demo.py)
#   make test   everything the tests need (venv, kernel, cloudlet), then every test tier
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FEDCLOUD := $(BIN)/fedcloud
PYTEST := $(BIN)/python -m pytest

.PHONY: help bootstrap venv demo demo-ticket cloudlet cloudlet-start cloudlet-stop cloudlet-status verify \
        test test-deps test-unit test-runbook test-integration test-browser test-nbval lab bench clean

help:
	@sed -n '2,5p' Makefile

# ---------------------------------------------------------------- environment
# a bare Debian 12 lacks python3-venv (and maybe git): install what the venv needs first
bootstrap:
	@scripts/apt-ensure scripts/bootstrap.txt

$(STAMP): pyproject.toml | bootstrap
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name fedcloud --display-name "fedcloud (Python 3)"
	touch $(STAMP)

venv: $(STAMP)

# ---------------------------------------------------------------- the local cloudlet
cloudlet: $(STAMP)
	$(FEDCLOUD) run cloudlet-install -f parameters/cloudlet-install/local.yaml --approve

cloudlet-start: $(STAMP)
	$(FEDCLOUD) cloudlet start

cloudlet-stop: $(STAMP)
	$(FEDCLOUD) cloudlet stop

cloudlet-status: $(STAMP)
	$(FEDCLOUD) cloudlet status --memory

verify: $(STAMP)
	$(FEDCLOUD) run cloudlet-verify

# ---------------------------------------------------------------- the main job
# the cloudlet (installed or re-applied and verified), then the headline SOP: a local
# ticket asks for an instance; dry run, approval of that plan, the instance, the mail (a
# local SMTP sink), the answers on the ticket, retirement; runs list and runs verify
demo: cloudlet demo-ticket

demo-ticket: $(STAMP)
	$(BIN)/python scripts/demo.py

# ---------------------------------------------------------------- tests
# Debian packages the tests use besides the cloudlet (daemons, tools, the browser)
test-deps:
	@scripts/apt-ensure tests/apt-packages.txt

# every tier; the runbook tier includes nbval over runbooks/ (tests/runbook/test_nbval_runbooks.py)
test: cloudlet test-deps
	$(PYTEST) tests

test-unit: $(STAMP)
	$(PYTEST) -m unit tests

test-runbook: $(STAMP) test-deps
	$(PYTEST) -m runbook tests

test-integration: cloudlet test-deps
	$(PYTEST) -m integration tests

# JupyterLab in headless Chromium (Debian's, from tests/apt-packages.txt) on the cloudlet
test-browser: cloudlet test-deps
	$(PYTEST) -m browser tests

# every runbook top to bottom with its defaults in a fresh kernel: each stops at its form
test-nbval: $(STAMP)
	$(PYTEST) --nbval-lax runbooks

lab: $(STAMP)
	$(FEDCLOUD) lab

bench: $(STAMP)
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/many_cells.py

clean:
	rm -rf $(VENV) .pytest_cache
