"""Wake the dispatcher when there is something to do (a job queued, a slot freed) instead of
letting it sleep out its polling interval: with backpressure, the time between a job finishing and
the next being published bounds throughput. Polling stays as the fallback; a lost nudge only costs
one interval."""
from __future__ import annotations

import logging
import time
from functools import lru_cache

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)
KEY = "resilience:dispatcher:wake"


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    # socket_timeout must outlast the blocking wait below (redis-py's default would cut it off).
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3,
                                socket_timeout=settings.DISPATCH_INTERVAL_SECONDS + 5)


def nudge() -> None:
    """Tell the dispatcher to run a round now. Never fails the caller: polling covers a lost nudge."""
    try:
        pipe = _client().pipeline()
        pipe.lpush(KEY, 1)
        pipe.ltrim(KEY, 0, 0)  # one pending nudge is as good as many
        pipe.execute()
    except redis.RedisError as exc:
        logger.debug("dispatcher nudge failed: %s", exc)


def nudge_on_commit() -> None:
    transaction.on_commit(nudge)


def wait(timeout: float) -> bool:
    """Block until nudged or `timeout` passes; True if nudged."""
    try:
        # BLPOP takes the one pending nudge (nudge() keeps at most one); one that comes while the
        # round runs stays, so the next wait returns at once and nothing it announced waits a poll.
        return _client().blpop([KEY], timeout=max(timeout, 0.01)) is not None
    except redis.RedisError:
        # Redis away: wait out the interval as plain polling would. Returning at once made the
        # leader spin through dispatch rounds (half a CPU and a stream of queries) for the outage.
        time.sleep(timeout)
        return False


def redis_run_id() -> str | None:
    """The Redis server's run id: it changes when Redis restarts (and forgets its queued messages)."""
    try:
        return _client().info("server").get("run_id")
    except redis.RedisError:
        return None
