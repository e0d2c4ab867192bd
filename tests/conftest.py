from __future__ import annotations

import pytest
import redis
from django.conf import settings


@pytest.fixture
def redis_client():
    """The test Redis database, emptied before and after the test."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
