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

exec .venv/bin/python -m pytest "$@"
