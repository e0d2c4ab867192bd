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

# TEST_DATABASE_URL, or the machine's PostgreSQL if it lets the test role in, or a throwaway cluster in var/.
test: venv
	@bash deploy/run-tests.sh

.PHONY: up down logs status

# Start everything (settings, Redis, a project-local PostgreSQL unless DATABASE_URL names yours, admin user,
# all processes); safe to run again. Settings given in the environment are written to .env.local.
up: venv
	@bash deploy/up.sh

# Stop every process `make up` started (a PostgreSQL or Redis that was already running is left alone).
down:
	@bash deploy/down.sh

# Follow every program's log (Ctrl-C to stop).
logs:
	@ls var/log/*.log >/dev/null 2>&1 || { echo "no logs yet in var/log: run make up"; exit 1; }
	@tail -n 20 -F var/log/*.log

# One line per program: RUNNING, STARTING, BACKOFF, FATAL ... (with the running system's settings, so a
# broken .env.local does not stop it)
status:
	@bash deploy/workers.sh status

# The original system's npm scripts (workers, workers:prod, workers:status ...); see deploy/workers.sh.
.PHONY: workers workers-prod workers-status workers-logs workers-logs-primary workers-logs-backup workers-restart workers-stop

# Development: all four queues in one foreground process tree, reloaded on .py changes, MOCK_MODE=true.
workers: venv
	@bash deploy/workers.sh dev

# The primary and backup pools under supervisord (starts the whole system when it is not running).
workers-prod: venv
	@bash deploy/workers.sh prod

# supervisorctl status, and whether every worker node consumes its queue.
workers-status:
	@bash deploy/workers.sh status

# Follow the worker and dispatcher logs of both pools, or of one (Ctrl-C to stop).
workers-logs:
	@bash deploy/workers.sh logs
workers-logs-primary:
	@bash deploy/workers.sh logs primary
workers-logs-backup:
	@bash deploy/workers.sh logs backup

# Rolling restart: primary, then backup, each back to consuming before the next; then the web app.
workers-restart:
	@bash deploy/workers.sh restart

# Stop both worker pools (warm shutdown); web, Flower and supervisord keep running.
workers-stop:
	@bash deploy/workers.sh stop

.PHONY: bench
# Measured figures (several minutes): rate limits, crash recovery, idle memory, throughput vs bare Celery.
bench: venv
	@bash -c '. deploy/services.sh && ensure_postgres 127.0.0.1 5432 && ensure_redis 127.0.0.1 6379 var/redis'
	@$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

.PHONY: chaos
# The whole pipeline under fire (about 10 min, hard deadline 20): 1,000 leads through the webhook while
# workers are SIGKILLed, a pool restarts, Redis restarts empty and PostgreSQL goes away for 20 s, Claude a
# fake API on loopback and a daily budget reached mid-run; then PASS/FAIL per guarantee. Own PostgreSQL,
# Redis, SMTP sink, fake Anthropic API and supervisord (ports 56010-56015, var/chaos).
chaos: venv
	@$(VENV)/bin/python -m chaos.run $(CHAOS_ARGS)

.PHONY: chaos-hosts
# Two real hosts (about 6 min, hard deadline 12; root): the pools in two network namespaces with their own
# host names, host B cut from Redis, from PostgreSQL, from both (30 s each), then host A frozen, under 2
# leads/s; then PASS/FAIL per guarantee. Own PostgreSQL, Redis, SMTP sink (ports 56020-56024,
# var/chaos-hosts), namespaces rsh-hostA/rsh-hostB. --short: one cut.
chaos-hosts: venv
	@$(VENV)/bin/python -m chaos.hosts $(CHAOS_ARGS)
