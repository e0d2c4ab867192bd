#!/usr/bin/env bash
# make up: settings, Redis, database, admin user, then every process under supervisord.
# Safe to run again: it creates only what is missing and starts only what is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/services.sh
CMD_NAME="make up"
. deploy/common.sh
T0=$(date +%s)

mkdir -p var/log

if pid=$(dev_workers_pid); then
  fail "make workers (the development workers, pid $pid) is running and would compete for the same queues: stop it first (Ctrl-C in its terminal)"
fi

# --- settings: .env.local, then the environment supervisord and its programs inherit -------------
load_settings || exit 1
if [ -z "${FLOWER_BASIC_AUTH:-}" ]; then
  fail "FLOWER_BASIC_AUTH is empty: Flower would show every worker and task to anyone; set it to user:password in .env.local"
fi

# Not yet running: the ports must be free, or the readiness check below would talk to another program.
if ! supervisord_running; then
  $HELP ports-free "WEB_PORT=$WEB_PORT" "FLOWER_PORT=$FLOWER_PORT" || exit 1
fi

# --- Redis ------------------------------------------------------------------------------------
step "Redis: $S_REDIS_URL_SHOWN"
ensure_app_redis

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
flower_login="user ${FLOWER_BASIC_AUTH%%:*}, password ${FLOWER_BASIC_AUTH#*:} (FLOWER_BASIC_AUTH in .env.local)"
running=$("${CTL[@]}" status | grep -c RUNNING || true)

cat <<EOF

Resilience is up: $running programs RUNNING under supervisord, ready in $(( $(date +%s) - T0 )) s.

  Admin     $web/admin/
            $login
  Dashboard $web/admin/workers/   (health per queue, workers, dead letters; same login)
  API       $web/api/admin/workers/health, $web/api/admin/dead-letter-queue, $web/metrics
            staff session, or a token: .venv/bin/python manage.py create_api_token NAME [--read-only]
  Flower    http://127.0.0.1:$FLOWER_PORT/
            $flower_login
  Webhook   POST $web/api/webhooks/clay
            header X-Clay-Secret: $S_WEBHOOK_SECRET   (CLAY_WEBHOOK_SECRET in .env.local)
            curl -X POST $web/api/webhooks/clay -H 'Content-Type: application/json' \\
              -H "X-Clay-Secret: $S_WEBHOOK_SECRET" -d '[{"email": "jane@example.com", "first_name": "Jane"}]'
  Redis     $S_REDIS_URL_SHOWN ($REDIS_NOTE)
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
  make workers-status                                           # the worker pools; rolling restart: make workers-restart
  make logs                                                     # follow the logs
  make down                                                     # stop everything
EOF
