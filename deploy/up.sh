#!/usr/bin/env bash
# make up: settings, Redis, database, admin user, then every process under supervisord.
# Safe to run again: it creates only what is missing and starts only what is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/services.sh

PY=.venv/bin/python
CONF=deploy/supervisord.conf
CTL=(.venv/bin/supervisorctl -c "$CONF")
HELP="$PY deploy/up_helper.py"
T0=$(date +%s)

step() { printf '==> %s\n' "$*"; }
fail() { printf 'make up: %s\n' "$*" >&2; exit 1; }

supervisord_running() {
  [ -f var/supervisord.pid ] && kill -0 "$(cat var/supervisord.pid)" 2>/dev/null &&
    "${CTL[@]}" pid >/dev/null 2>&1
}

mkdir -p var/log

# --- settings: .env.local, then the environment supervisord and its programs inherit -------------
$HELP envfile
eval "$($HELP exports)"
# supervisord.conf expands these, so they must exist; the defaults are those of resilience/settings.py.
export LEAD_PROCESSING_CONCURRENCY=${LEAD_PROCESSING_CONCURRENCY:-5}
export SITE_GENERATION_CONCURRENCY=${SITE_GENERATION_CONCURRENCY:-3}
export EMAIL_SENDING_CONCURRENCY=${EMAIL_SENDING_CONCURRENCY:-10}
export DELIVERY_CONCURRENCY=${DELIVERY_CONCURRENCY:-2}
export WEB_PORT=${WEB_PORT:-8000}
export FLOWER_PORT=${FLOWER_PORT:-5555}
# A bad value (an https:// REDIS_URL, a short SECRET_KEY ...) stops here with one line.
settings=$($HELP settings) || exit 1
eval "$settings"
export WORKER_STOP_WAIT_SECONDS=$((S_TASK_TIME_LIMIT + 30))
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
  say "warning: FLOWER_BASIC_AUTH is empty: Flower will answer anyone who can reach 127.0.0.1:$FLOWER_PORT"
fi

# Not yet running: the ports must be free, or the readiness check below would talk to another program.
if ! supervisord_running; then
  $HELP ports-free "WEB_PORT=$WEB_PORT" "FLOWER_PORT=$FLOWER_PORT" || exit 1
fi

# --- Redis ------------------------------------------------------------------------------------
step "Redis: $S_REDIS_URL_SHOWN"
redis_note="already running"
if [ -f var/redis/redis.pid ] && kill -0 "$(cat var/redis/redis.pid)" 2>/dev/null; then
  redis_note="project-local redis-server, data in var/redis; make down stops it"
fi
rc=0; $HELP redis-ping "$S_REDIS_URL" || rc=$?
if [ "$rc" = 3 ]; then
  read -r redis_host redis_port < <(url_host_port "$S_REDIS_URL" 6379)
  ensure_redis "$redis_host" "$redis_port" "$ROOT/var/redis" || exit 1
  rc=0; $HELP redis-ping "$S_REDIS_URL" || rc=$?
  redis_note="project-local redis-server, data in var/redis; make down stops it"
fi
case "$rc" in
  0) ;;
  3) fail "Redis does not answer at $S_REDIS_URL_SHOWN (REDIS_URL): start it or fix the URL" ;;
  *) fail "Redis at $S_REDIS_URL_SHOWN cannot be used (see above): fix REDIS_URL" ;;
esac

# --- database and admin user ------------------------------------------------------------------
step "Database: $S_DATABASE"
$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
admin_note=$($PY manage.py ensure_admin) || exit 1
printf '%s\n' "$admin_note" | sed 's/^/    /'

# --- processes --------------------------------------------------------------------------------
env_hash=$(cksum < .env.local)
if supervisord_running; then
  step "supervisord is running: applying config changes, starting stopped programs"
  "${CTL[@]}" update
  "${CTL[@]}" start all | grep -v -E 'already started' || true
  if [ -f var/supervisord.env-hash ] && [ "$(cat var/supervisord.env-hash)" != "$env_hash" ]; then
    say "note: .env.local changed since supervisord started; its programs still run with the old values."
    say "      To apply the change: make down && make up"
  fi
else
  step "starting supervisord ($CONF)"
  rm -f var/supervisord.sock
  .venv/bin/supervisord -c "$CONF" || fail "supervisord did not start: see var/log/supervisord.log"
  printf '%s\n' "$env_hash" > var/supervisord.env-hash
fi

step "waiting for the web app, Flower and all programs (up to 60 s)"
if ! $HELP wait 60; then
  say ""
  say "Logs are in $ROOT/var/log/ (one file per program; supervisord.log for supervisord itself)."
  say "  .venv/bin/supervisorctl -c $CONF status"
  say "  .venv/bin/supervisorctl -c $CONF tail <program>"
  say "Everything started is left running for you to look at; stop it with: make down"
  exit 1
fi

# --- what to do next --------------------------------------------------------------------------
web="http://127.0.0.1:$WEB_PORT"
if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ]; then
  login="user $DJANGO_SUPERUSER_USERNAME, password from DJANGO_SUPERUSER_PASSWORD"
elif [ -f "$S_VAR_DIR/admin-credentials.txt" ]; then
  login="user admin, password in $S_VAR_DIR/admin-credentials.txt"
else
  login="the admin user created earlier (forgot the password? .venv/bin/python manage.py changepassword <user>)"
fi
if [ -n "${FLOWER_BASIC_AUTH:-}" ]; then
  flower_login="user ${FLOWER_BASIC_AUTH%%:*}, password ${FLOWER_BASIC_AUTH#*:} (FLOWER_BASIC_AUTH in .env.local)"
else
  flower_login="no login (FLOWER_BASIC_AUTH is empty)"
fi
running=$("${CTL[@]}" status | grep -c RUNNING || true)

cat <<EOF

Resilience is up: $running programs RUNNING under supervisord, ready in $(( $(date +%s) - T0 )) s.

  Admin     $web/admin/
            $login
  Flower    http://127.0.0.1:$FLOWER_PORT/
            $flower_login
  Webhook   POST $web/api/webhooks/clay
            header X-Clay-Secret: $S_WEBHOOK_SECRET   (CLAY_WEBHOOK_SECRET in .env.local)
            curl -X POST $web/api/webhooks/clay -H 'Content-Type: application/json' \\
              -H "X-Clay-Secret: $S_WEBHOOK_SECRET" -d '[{"email": "jane@example.com", "first_name": "Jane"}]'
  Redis     $S_REDIS_URL_SHOWN ($redis_note)
  Database  $S_DATABASE
  Logs      var/log/   (make logs)
  Mode      MOCK_MODE=$S_MOCK_MODE DEBUG=$S_DEBUG

Next:
EOF
if ls ./*/management/commands/generate_test_leads.py >/dev/null 2>&1; then
  echo "  .venv/bin/python manage.py generate_test_leads 10         # 10 fake leads through the queue"
fi
cat <<EOF
  .venv/bin/supervisorctl -c $CONF status   # every program
  make logs                                                     # follow the logs
  make down                                                     # stop everything
EOF
