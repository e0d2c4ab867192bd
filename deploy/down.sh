#!/usr/bin/env bash
# make down: stop supervisord and every program it runs, then the project-local PostgreSQL
# (var/postgres) and redis-server (var/redis/redis.pid) if `make up` started them. A PostgreSQL or
# Redis that was already running is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/services.sh

CONF=deploy/supervisord.conf
CTL=(.venv/bin/supervisorctl -c "$CONF")

# wait_gone PID SECONDS: true once the process has exited.
wait_gone() {
  local pid=$1 limit=$2 waited=0
  while kill -0 "$pid" 2>/dev/null; do
    [ "$waited" -ge "$((limit * 10))" ] && return 1
    sleep 0.1; waited=$((waited + 1))
  done
}

# is_process PID NAME: PID runs a command line containing NAME (not a recycled pid).
is_process() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' < "/proc/$1/cmdline" | grep -q -- "$2"
  else
    ps -p "$1" -o command= 2>/dev/null | grep -q -- "$2"
  fi
}

pid=$(cat var/supervisord.pid 2>/dev/null || true)
if [ -n "$pid" ] && is_process "$pid" supervisord; then
  # Celery workers get a warm shutdown: running tasks may finish, up to the task time limit + 30 s.
  echo "stopping supervisord and its programs (running tasks may take a moment to finish)..."
  "${CTL[@]}" shutdown >/dev/null 2>&1 || kill -TERM "$pid"
  if ! wait_gone "$pid" 600; then
    echo "supervisord (pid $pid) is still running after 600 s; see var/log/supervisord.log" >&2
    exit 1
  fi
  echo "supervisord stopped"
else
  echo "supervisord is not running"
fi
rm -f var/supervisord.sock var/supervisord.pid var/supervisord.env-hash var/supervisord.env

if local_postgres_running var/postgres; then
  echo "stopping the project-local PostgreSQL (var/postgres)..."
  stop_local_postgres var/postgres || { echo "PostgreSQL in var/postgres did not stop; see var/postgres/server.log" >&2; exit 1; }
  echo "PostgreSQL stopped"
fi

pid=$(cat var/redis/redis.pid 2>/dev/null || true)
if [ -n "$pid" ] && is_process "$pid" redis-server; then
  echo "stopping the project-local redis-server (pid $pid)..."
  kill -TERM "$pid"  # saves the append-only file, then exits
  wait_gone "$pid" 30 || { echo "redis-server (pid $pid) did not stop; see var/redis/redis.log" >&2; exit 1; }
  echo "redis-server stopped"
fi
rm -f var/redis/redis.pid
