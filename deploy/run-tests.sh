#!/usr/bin/env bash
# make test: make sure PostgreSQL and Redis run, make sure the test role can create the test
# database, then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/services.sh

TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/resilience}
TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export TEST_DATABASE_URL TEST_REDIS_URL

read -r pg_host pg_port < <(url_host_port "$TEST_DATABASE_URL" 5432)
read -r redis_host redis_port < <(url_host_port "$TEST_REDIS_URL" 6379)
ensure_postgres "$pg_host" "$pg_port" || exit 1
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

exec .venv/bin/python -m pytest "$@"
