"""Settings for the test suite: real PostgreSQL and Redis, short periods, no .env.local.

Worker and dispatcher processes started by system tests use this module too, so they share the
test database and Redis database with the test that started them. Without TEST_DATABASE_URL and
TEST_REDIS_URL both are this checkout's own (tests/checkout.py).
"""
import os

from tests import checkout

os.environ["ENV_FILE"] = ""
# Unless given, this checkout's own database and Redis db (deploy/run-tests.sh passes the same).
os.environ["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or checkout.database_url(
    "postgres://postgres@127.0.0.1:5432/")
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL") or checkout.redis_url()
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 32)
os.environ.setdefault("CLAY_WEBHOOK_SECRET", "test-clay-secret")
os.environ.setdefault("MOCK_MODE", "true")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("RETRY_MAX_SECONDS", "1")
os.environ.setdefault("JOB_LEASE_SECONDS", "3")
# No grace by default: a test that makes a lease run out sees the reaper take it at once; the tests of
# the grace itself (tests/system/test_vanished_host.py) run with the production figures.
os.environ.setdefault("JOB_LEASE_GRACE_SECONDS", "0")
os.environ.setdefault("JOB_REDISPATCH_SECONDS", "10")
os.environ.setdefault("DISPATCH_INTERVAL_SECONDS", "0.1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("HEARTBEAT_INTERVAL_SECONDS", "1")
os.environ.setdefault("HEARTBEAT_TTL_SECONDS", "3")
# No rate limits unless a test sets one: tests push many jobs through one Redis.
for _queue in ("LEAD_PROCESSING", "SITE_GENERATION", "EMAIL_SENDING", "DELIVERY"):
    os.environ.setdefault(f"{_queue}_RATE", "0")

from resilience.settings import *  # noqa: E402,F403

# System tests' worker processes open the test database by its final name.
if "TEST_DB_NAME" in os.environ:
    DATABASES["default"]["NAME"] = os.environ["TEST_DB_NAME"]  # noqa: F405
