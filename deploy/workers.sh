#!/usr/bin/env bash
# The worker commands (the original system's npm scripts workers, workers:prod, workers:status ...):
#   deploy/workers.sh dev                     make workers: development workers in the foreground
#   deploy/workers.sh prod                    make workers-prod: the primary and backup pools under supervisord
#   deploy/workers.sh status                  make workers-status
#   deploy/workers.sh logs [primary|backup]   make workers-logs, workers-logs-primary, workers-logs-backup
#   deploy/workers.sh restart                 make workers-restart: rolling, one pool at a time
#   deploy/workers.sh stop                    make workers-stop: the pools only; web and Flower keep running
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/services.sh
case "${1:-}" in dev) CMD_NAME="make workers" ;; *) CMD_NAME="make workers-${1:-}" ;; esac
. deploy/common.sh
WORKERS="$PY deploy/workers_helper.py"

need_supervisord() {
  supervisord_running || { echo "not running: make up" >&2; exit 1; }
}

# left_running_note: after make workers, the project-local PostgreSQL and redis-server it started (or found)
# that still run, and how to stop them.
left_running_note() {
  local left=() pid data
  if [ -n "${S_DATABASE_LOCAL:-}" ] && local_postgres_running var/postgres; then
    data=var/postgres
    [ -L var/postgres ] && data=$(cd var/postgres && pwd -P)
    left+=("the project-local PostgreSQL (127.0.0.1:$S_DATABASE_PORT, data in $data)")
  fi
  pid=$(cat var/redis/redis.pid 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    left+=("the project-local redis-server ($S_REDIS_URL_SHOWN, data in var/redis)")
  fi
  [ "${#left[@]}" -gt 0 ] || return 0
  local IFS=";"
  step "make workers stopped; still running:${left[*]/#/ }. make down stops them"
}

env_changed_note() {
  if env_changed; then
    say "note: .env.local changed since supervisord started; restarted programs keep the old values (make down && make up applies them)"
  fi
}

case "${1:-}" in
  dev)
    if supervisord_running; then
      fail "the supervisord system of make up is running and its workers consume the same queues: make down first (or use make workers-status, workers-logs)"
    fi
    if pid=$(dev_workers_pid); then
      fail "make workers is already running (pid $pid)"
    fi
    mkdir -p var/log
    export MOCK_MODE=true  # wins over .env.local: no real AI or email calls in development
    load_settings || exit 1
    ensure_app_redis
    step "Redis: $S_REDIS_URL_SHOWN ($REDIS_NOTE)"
    ensure_app_postgres
    step "Database: $S_DATABASE ($DATABASE_NOTE)"
    $PY manage.py migrate --noinput -v 0
    step "development workers: one Celery worker for all four queues and a dispatcher, MOCK_MODE=true; reloads when a .py file changes; Ctrl-C stops"
    # Not exec: when the workers stop, say what outlives them. Ctrl-C reaches the workers too (a trapped
    # signal is not inherited); this shell waits for them, then goes on.
    trap : INT
    rc=0; $PY manage.py run_workers_dev || rc=$?
    left_running_note
    exit "$rc"
    ;;
  prod)
    if pid=$(dev_workers_pid); then
      fail "make workers (the development workers, pid $pid) is running and would compete for the same queues: stop it first (Ctrl-C in its terminal)"
    fi
    if ! supervisord_running; then
      step "supervisord is not running: starting the whole system (make up)"
      exec bash deploy/up.sh
    fi
    load_running_settings || exit 1
    env_changed_note
    step "supervisord is running: starting the primary and backup pools"
    exec $WORKERS start 60
    ;;
  status)
    need_supervisord
    # The running system's settings, not .env.local's (which may have been edited since, or be broken).
    load_running_settings >/dev/null || exit 1
    exec $WORKERS status
    ;;
  logs)
    case "${2:-all}" in
      primary) logs=(var/log/*-primary.log) ;;
      backup) logs=(var/log/*-backup.log) ;;
      all) logs=(var/log/*-primary.log var/log/*-backup.log) ;;
      *) fail "logs: primary, backup or nothing (all), not ${2}" ;;
    esac
    [ -e "${logs[0]}" ] || fail "no worker logs yet in var/log: make up"
    echo "following ${logs[*]} (Ctrl-C to stop)"
    exec tail -n 20 -F "${logs[@]}"
    ;;
  restart)
    need_supervisord
    load_running_settings || exit 1
    env_changed_note
    exec $WORKERS restart 60
    ;;
  stop)
    if ! supervisord_running; then
      echo "not running: nothing to stop"
      exit 0
    fi
    load_running_settings || exit 1
    exec $WORKERS stop
    ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
