"""The one Redis client for short commands (limiter, probes, metrics); the dispatcher's blocking
wait has its own in workers.wakeup, with a longer read timeout."""
from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def shared_client() -> redis.Redis:
    # Explicit timeouts: a call must fail fast, never hang a worker, the dispatcher or a web request.
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
