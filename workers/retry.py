"""Retry policy: exponential backoff with jitter, computed once here for every queue."""
from __future__ import annotations

import random

from django.conf import settings

from workers.errors import RetryLater


def backoff_seconds(attempt: int, *, base: float | None = None, cap: float | None = None,
                    rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped, with equal jitter.

    Half the delay is fixed so retries never bunch up at zero; the other half is random so
    jobs that failed together (an API outage) do not all come back in the same second.
    """
    base = settings.RETRY_BASE_SECONDS if base is None else base
    cap = settings.RETRY_MAX_SECONDS if cap is None else cap
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def retry_delay_seconds(attempt: int, exc: BaseException) -> float:
    """Delay before the next attempt after failed attempt number `attempt` raised `exc`: the backoff,
    or longer if the failure asked for a longer wait (RetryLater, e.g. a 429's retry-after)."""
    delay = backoff_seconds(attempt)
    if isinstance(exc, RetryLater):
        delay = max(delay, exc.seconds)
    return delay


def max_attempts_for(queue: str) -> int:
    return settings.JOB_MAX_ATTEMPTS[queue]
