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

.PHONY: up down logs status

# Start everything (settings, Redis, database, admin user, all processes); safe to run again.
up: venv
	@bash deploy/up.sh

# Stop every process `make up` started (a Redis that was already running is left alone).
down:
	@bash deploy/down.sh

# Follow every program's log (Ctrl-C to stop).
logs:
	@ls var/log/*.log >/dev/null 2>&1 || { echo "no logs yet in var/log: run make up"; exit 1; }
	@tail -n 20 -F var/log/*.log

# One line per program: RUNNING, STARTING, BACKOFF, FATAL ...
status:
	@.venv/bin/supervisorctl -c deploy/supervisord.conf status

.PHONY: bench
# Measured figures (several minutes): rate limits, crash recovery, idle memory, throughput vs bare Celery.
bench: venv
	@bash -c '. deploy/services.sh && ensure_postgres 127.0.0.1 5432 && ensure_redis 127.0.0.1 6379 var/redis'
	@$(VENV)/bin/python -m bench.run $(BENCH_ARGS)
