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
KEY = "resilience:dispatcher:wake"  # new work is due
FREED_KEY = "resilience:dispatcher:freed"  # a running job ended


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    # socket_timeout must outlast the blocking wait below (redis-py's default would cut it off).
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3,
                                socket_timeout=settings.DISPATCH_INTERVAL_SECONDS + 5)


def nudge(*, freed: bool = False) -> None:
    """Tell the dispatcher to run a round now. Never fails the caller: polling covers a lost nudge.

    freed: the nudge only says that a running job ended (a slot is free), not that new work is due;
    the dispatcher may gather several of those into one round (see wait)."""
    try:
        pipe = _client().pipeline(transaction=False)  # one round trip; the two need not be atomic
        key = FREED_KEY if freed else KEY
        pipe.lpush(key, 1)
        pipe.ltrim(key, 0, 0)  # one pending nudge is as good as many
        pipe.execute()
    except redis.RedisError as exc:
        logger.debug("dispatcher nudge failed: %s", exc)


def nudge_on_commit() -> None:
    transaction.on_commit(nudge)


def wait(timeout: float, *, gather: float = 0.0) -> bool:
    """Block until nudged or `timeout` passes; True if nudged.

    A nudge that new work is due returns at once. A nudge that only freed a slot returns after up to
    `gather` seconds more, or sooner when new work is announced meanwhile: under a backlog every job
    that ends nudges, and one round per job cost the dispatcher more than the job itself (measured
    with bench/speed.py); gathered, one round publishes what several freed."""
    try:
        # BLPOP takes one pending nudge, new work first (nudge() keeps at most one of each kind); one
        # left, or one that comes while the round runs, makes the next wait return at once, so nothing
        # waits a poll.
        got = _client().blpop([KEY, FREED_KEY], timeout=max(timeout, 0.01))
        if got is not None and got[0].decode() == FREED_KEY and gather > 0:
            _client().blpop([KEY], timeout=gather)
        return got is not None
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
