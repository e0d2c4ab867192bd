#!/usr/bin/env bash
# make up: settings, Redis, database, admin user, then every process under supervisord.
# Safe to run again: it creates only what is missing and starts only what is stopped.
# Settings given in the environment are written to .env.local first, so every later command (in
# any shell) and every restarted program uses the same values.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/services.sh
CMD_NAME="make up"
. deploy/common.sh
T0=$(date +%s)

mkdir -p var/log
# Logs and the dev mail sink (leads' addresses, tracking links) readable by their owner only. New files
# are made so (supervisord's umask=077, resilience/logfiles.py); these lines tighten what an older
# version left readable by others.
chmod -R go-rwx var/log || say "note: some files in var/log are not yours; others may still read them"
[ ! -d var/mail ] || chmod -R go-rwx var/mail || say "note: some files in var/mail are not yours; others may still read them"

if pid=$(dev_workers_pid); then
  fail "make workers (the development workers, pid $pid) is running and would compete for the same queues: stop it first (Ctrl-C in its terminal)"
fi

# --- settings: .env.local, then the environment supervisord and its programs inherit -------------
$HELP envfile || exit 1
$HELP remember || exit 1
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
ensure_app_postgres
$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
admin_note=$($PY manage.py ensure_admin) || exit 1
printf '%s\n' "$admin_note" | sed 's/^/    /'

# --- processes --------------------------------------------------------------------------------
if supervisord_running; then
  step "supervisord is running: applying config changes, starting stopped programs"
  "${CTL[@]}" update
  "${CTL[@]}" start all | grep -v -E 'already started' || true
  if env_changed; then
    say "note: .env.local changed since supervisord started; its programs still run with the old values."
    say "      To apply the change: make down && make up"
  fi
else
  step "starting supervisord ($CONF)"
  rm -f var/supervisord.sock var/supervisord.env-hash
  (umask 077 && cp .env.local "$RUNNING_ENV")
  # umask 077: supervisord opens its own log before it applies the umask=077 of its config.
  (umask 077 && exec .venv/bin/supervisord -c "$CONF") || fail "supervisord did not start: see var/log/supervisord.log"
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
login=$($HELP admin-login)
flower_login="user ${FLOWER_BASIC_AUTH%%:*}, password ${FLOWER_BASIC_AUTH#*:} (FLOWER_BASIC_AUTH in .env.local)"
running=$("${CTL[@]}" status | grep -c RUNNING || true)

cat <<EOF

Resilience is up: $running programs RUNNING under supervisord, ready in $(( $(date +%s) - T0 )) s.

  Admin     $web/admin/
            $login
  Dashboard $web/admin/workers/   (health per queue, workers, dead letters; same login)
  API       $web/api/admin/workers/health, $web/api/admin/dead-letter-queue, $web/metrics
            staff session, or a token: .venv/bin/python manage.py create_api_token NAME [--scope read|dlq|deliver|admin]  (read only by default)
  Flower    http://127.0.0.1:$FLOWER_PORT/
            $flower_login
  Webhook   POST $web/api/webhooks/clay
            header X-Clay-Secret: $S_WEBHOOK_SECRET   (CLAY_WEBHOOK_SECRET in .env.local)
            curl -X POST $web/api/webhooks/clay -H 'Content-Type: application/json' \\
              -H "X-Clay-Secret: $S_WEBHOOK_SECRET" -d '[{"email": "jane@example.com", "first_name": "Jane"}]'
  Redis     $S_REDIS_URL_SHOWN ($REDIS_NOTE)
  Database  $S_DATABASE ($DATABASE_NOTE)
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
