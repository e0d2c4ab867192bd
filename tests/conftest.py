from __future__ import annotations

import pytest
import redis
from django.conf import settings

# Every process of the system runs with the project's Celery app (workers through -A, the dispatcher
# through workers.celery_app). A test that calls a task directly needs it too: without it,
# shared_task binds the task to Celery's default app, its LedgerJobTask class is lost, and a
# failed attempt returns instead of raising (so a file's result depended on what ran before it).
from resilience.celery import app as _project_celery_app  # noqa: F401


@pytest.fixture
def redis_client():
    """The test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(autouse=True)
def _whole_schema_after_a_migration_test(request):
    """A test that moves the schema back (tests.migrating) leaves it whole for the tests after it,
    whatever it migrated to last: one that stopped at an old migration made later files fail by order."""
    yield
    from tests import migrating

    if getattr(request.module, "migrate", None) is migrating.migrate:
        migrating.migrate_to_latest()
