# The two commands that matter: `make up` (start everything) and `make test` (run every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.requirements-installed

.PHONY: test venv

venv: $(STAMP)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed: install python3 (with venv and pip)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed, found $$($(PYTHON) --version)"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): install python3-venv"; exit 1; }
	@echo "installing Python packages into $(VENV)..."
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@

test: venv
	@bash deploy/run-tests.sh
