#!/usr/bin/env bash
# make test: find a PostgreSQL the tests can use, make sure Redis runs, then run the whole suite.
# Extra arguments go to pytest.
#
# PostgreSQL: TEST_DATABASE_URL when set (started when it is a stopped local cluster). Unset, the
# machine's PostgreSQL at TEST_MACHINE_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/resilience)
# when its role gets in without a password and may create databases (CI's trust-auth cluster: the
# fast path). Otherwise (Debian's default peer/scram authentication, or nothing answering) a throwaway
# cluster of its own in var/postgres-test on 127.0.0.1:TEST_LOCAL_POSTGRES_PORT, made from the machine's
# PostgreSQL programs and stopped when the tests end. Unless TEST_DATABASE_URL / TEST_REDIS_URL /
# TEST_LOCAL_POSTGRES_PORT say otherwise, the database's name, the Redis db and that port are this
# checkout's own (tests/checkout.py), so another checkout or the running system is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/services.sh
PY=.venv/bin/python

read -r _ own_redis_db own_port < <(python3 -m tests.checkout) || true
# Never an empty db number: redis://...:6379/ is db 0, the running system's.
[ -n "${own_port:-}" ] || { say "make test: tests/checkout.py did not say which database, Redis db and port are this checkout's"; exit 1; }
TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/$own_redis_db}
TEST_LOCAL_POSTGRES_PORT=${TEST_LOCAL_POSTGRES_PORT:-$own_port}
TEST_CLUSTER=var/postgres-test

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  read -r pg_host pg_port < <(url_host_port "$TEST_DATABASE_URL" 5432)
  ensure_postgres "$pg_host" "$pg_port" || exit 1
else
  probe=${TEST_MACHINE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/resilience}
  rc=0; why=$($PY deploy/up_helper.py pg-probe "$probe") || rc=$?
  if [ "$rc" = 0 ]; then
    TEST_DATABASE_URL=$(python3 -m tests.checkout database-url "$probe")
  else
    say "make test: ${why:-the machine PostgreSQL cannot be used}: the tests run on a throwaway PostgreSQL in $TEST_CLUSTER (127.0.0.1:$TEST_LOCAL_POSTGRES_PORT; TEST_DATABASE_URL chooses another)"
    ensure_local_postgres "$TEST_CLUSTER" "$TEST_LOCAL_POSTGRES_PORT" TEST_DATABASE_URL TEST_LOCAL_POSTGRES_PORT || exit 1
    trap 'stop_local_postgres "$TEST_CLUSTER" || say "could not stop the PostgreSQL in $TEST_CLUSTER"' EXIT
    # A new password every run: nothing else uses this cluster.
    TEST_DATABASE_URL=$(python3 -m tests.checkout database-url "$($PY deploy/up_helper.py database-url "$TEST_LOCAL_POSTGRES_PORT")")
    $PY deploy/up_helper.py local-db "$TEST_CLUSTER" "$TEST_DATABASE_URL" --superuser || exit 1
  fi
fi
export TEST_DATABASE_URL TEST_REDIS_URL
test_database=${TEST_DATABASE_URL##*/}
say "make test: database test_${test_database%%\?*}, Redis $TEST_REDIS_URL (both emptied by the tests)"

read -r redis_host redis_port < <(url_host_port "$TEST_REDIS_URL" 6379)
ensure_redis "$redis_host" "$redis_port" var/redis-test || exit 1

# tests/browser drives Debian's Chromium through Playwright, which never downloads a browser of its
# own here. Without /usr/bin/chromium those tests are skipped (they say why); the rest still run.
if [ ! -x /usr/bin/chromium ]; then
  if can_apt_install; then
    apt_install chromium || say "could not install chromium with apt-get: the browser tests will be skipped"
  else
    say "browser tests will be skipped: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium"
  fi
fi

# tests/monitoring checks /metrics with promtool (`promtool check metrics`), Debian's prometheus
# package's: only the program is taken from the package (apt-get download, unpacked into var/tools),
# so no Prometheus service is installed or started. Without it that test is skipped, saying why.
PROMTOOL=$(command -v promtool || echo "$PWD/var/tools/promtool")
if [ ! -x "$PROMTOOL" ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  say "fetching promtool from Debian's prometheus package into var/tools..."
  promtool_tmp=$(mktemp -d)
  if (cd "$promtool_tmp" && apt-get download -qq prometheus >/dev/null 2>&1 && dpkg -x prometheus_*.deb x) \
     && [ -x "$promtool_tmp/x/usr/bin/promtool" ]; then
    mkdir -p var/tools && cp "$promtool_tmp/x/usr/bin/promtool" var/tools/promtool
  else
    say "could not fetch promtool (apt-get download prometheus): the promtool check of /metrics will be skipped"
  fi
  rm -rf "$promtool_tmp"
fi
export PROMTOOL

if trap -p EXIT | grep -q .; then
  # Not exec: the throwaway cluster is stopped when pytest ends.
  rc=0; $PY -m pytest "$@" || rc=$?
  exit "$rc"
fi
exec $PY -m pytest "$@"
