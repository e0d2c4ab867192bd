# Shared by deploy/up.sh (make up) and deploy/workers.sh (make workers*): sourced, not run, from the
# project root, after deploy/services.sh. Set CMD_NAME first: it prefixes the one-line failures.

PY=.venv/bin/python
CONF=deploy/supervisord.conf
CTL=(.venv/bin/supervisorctl -c "$CONF")
HELP="$PY deploy/up_helper.py"
CMD_NAME=${CMD_NAME:-make}

step() { printf '==> %s\n' "$*"; }
fail() { printf '%s: %s\n' "$CMD_NAME" "$*" >&2; exit 1; }

# supervisord_running: the supervisord of `make up` runs and answers on its socket.
supervisord_running() {
  [ -f var/supervisord.pid ] && kill -0 "$(cat var/supervisord.pid)" 2>/dev/null &&
    "${CTL[@]}" pid >/dev/null 2>&1
}

# dev_workers_pid: print the pid of a running `make workers` (manage.py run_workers_dev), if any.
dev_workers_pid() {
  local pid
  pid=$(cat var/workers-dev.pid 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q run_workers_dev || return 1
  fi
  printf '%s\n' "$pid"
}

# The settings supervisord was started with: a copy of .env.local that make up takes when it starts
# supervisord. make status and the make workers-* commands read it, not .env.local, so they work on
# the running system's settings even while .env.local is being edited (or has a bad line).
RUNNING_ENV=var/supervisord.env

# load_settings [FILE]: FILE exported (default .env.local, created with random secrets and a
# project-local DATABASE_URL when missing), the defaults that supervisord.conf's %(ENV_...)s
# expansions need, and the effective settings as S_* variables. A bad value (an https:// REDIS_URL,
# a short SECRET_KEY ...) prints one line and returns 1.
load_settings() {
  local settings file=${1:-.env.local}
  if [ "$file" = .env.local ]; then $HELP envfile || return 1; fi
  eval "$($HELP exports "$file")"
  # Everything started from here (supervisord and its programs, manage.py) reads exactly these
  # variables and never the file again: a restarted program cannot mix the values supervisord
  # started with and a later edit of .env.local.
  export ENV_FILE=
  # The defaults are those of resilience/settings.py.
  export LEAD_PROCESSING_CONCURRENCY=${LEAD_PROCESSING_CONCURRENCY:-5}
  export SITE_GENERATION_CONCURRENCY=${SITE_GENERATION_CONCURRENCY:-3}
  export EMAIL_SENDING_CONCURRENCY=${EMAIL_SENDING_CONCURRENCY:-10}
  export DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-2}
  # Each pool's two workers (supervisord.conf): lead-processing + delivery, site-generation + email-sending.
  export LOCAL_QUEUES_CONCURRENCY=$((LEAD_PROCESSING_CONCURRENCY + DELIVERY_CONCURRENCY))
  export NETWORK_QUEUES_CONCURRENCY=$((SITE_GENERATION_CONCURRENCY + EMAIL_SENDING_CONCURRENCY))
  export WORKER_MAX_MEMORY_PER_CHILD_KB=${WORKER_MAX_MEMORY_PER_CHILD_KB:-1048576}
  export WEB_PORT=${WEB_PORT:-8000}
  export FLOWER_PORT=${FLOWER_PORT:-5555}
  settings=$($HELP settings) || return 1
  eval "$settings"
  # supervisord waits this long for a worker's warm shutdown before it kills the worker's process group.
  export WORKER_STOP_WAIT_SECONDS=$((S_TASK_TIME_LIMIT + 30))
}

# load_running_settings: the settings of the running supervisord (its copy of .env.local; .env.local
# itself when supervisord was started before make up kept a copy).
load_running_settings() {
  if [ -f "$RUNNING_ENV" ]; then load_settings "$RUNNING_ENV"; else load_settings; fi
}

# env_changed: .env.local differs from the copy the running supervisord was started with.
env_changed() {
  [ -f "$RUNNING_ENV" ] && ! cmp -s .env.local "$RUNNING_ENV"
}

# ensure_app_postgres: the PostgreSQL of DATABASE_URL answers. When the URL names the project-local
# cluster (127.0.0.1:LOCAL_POSTGRES_PORT, 54329 by default), the cluster known as var/postgres is
# created and started when needed, and its role, password and database made to match the URL (make
# down stops it). Its data is in var/postgres, or where var/postgres links to: LOCAL_POSTGRES_HOME, or
# (as root, when the postgres OS user cannot enter the project) /var/lib/resilience/<hash>/postgres.
# Sets DATABASE_NOTE.
ensure_app_postgres() {
  local rc why data
  if [ -n "$S_DATABASE_LOCAL" ]; then
    ensure_local_postgres var/postgres "$S_DATABASE_PORT" DATABASE_URL LOCAL_POSTGRES_PORT "${LOCAL_POSTGRES_HOME:-}" || exit 1
    $HELP local-db var/postgres "$DATABASE_URL" || exit 1
    data=var/postgres
    [ -L var/postgres ] && data="$(cd var/postgres && pwd -P) (var/postgres links there)"
    DATABASE_NOTE="project-local PostgreSQL, data in $data; make down stops it"
    return 0
  fi
  rc=0; why=$($HELP db-ping "$DATABASE_URL") || rc=$?
  case "$rc" in
    0) DATABASE_NOTE="DATABASE_URL" ;;
    3) fail "$why (DATABASE_URL): start it, or fix DATABASE_URL" ;;
    *) fail "${why:-PostgreSQL cannot be used}: fix DATABASE_URL" ;;
  esac
}

# ensure_app_redis: the Redis of REDIS_URL answers; when nothing listens on this host, start a
# project-local redis-server (data in var/redis; make down stops it). Sets REDIS_NOTE.
ensure_app_redis() {
  local rc redis_host redis_port
  REDIS_NOTE="already running"
  if [ -f var/redis/redis.pid ] && kill -0 "$(cat var/redis/redis.pid)" 2>/dev/null; then
    REDIS_NOTE="project-local redis-server, data in var/redis; make down stops it"
  fi
  rc=0; $HELP redis-ping "$S_REDIS_URL" || rc=$?
  if [ "$rc" = 3 ]; then
    read -r redis_host redis_port < <(url_host_port "$S_REDIS_URL" 6379)
    ensure_redis "$redis_host" "$redis_port" "$(pwd)/var/redis" || exit 1
    rc=0; $HELP redis-ping "$S_REDIS_URL" || rc=$?
    REDIS_NOTE="project-local redis-server, data in var/redis; make down stops it"
  fi
  case "$rc" in
    0) ;;
    3) fail "Redis does not answer at $S_REDIS_URL_SHOWN (REDIS_URL): start it or fix the URL" ;;
    *) fail "Redis at $S_REDIS_URL_SHOWN cannot be used (see above): fix REDIS_URL" ;;
  esac
}
