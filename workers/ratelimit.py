"""Global rate limits: a sliding-window log per queue in Redis, shared by every worker on every host.

Each job start takes a slot; a slot frees when its start leaves the window. Both the check and the
taking happen in one Lua script under Redis's own clock (TIME), so hosts with skewed clocks and
concurrent workers can never start more than the limit in any window of the period. A job refused
a slot is not retried in a loop: the script says when the next slot frees, and the job waits in the
ledger until then.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from workers.redis_client import shared_client

KEY_PREFIX = "resilience:rate:"

# KEYS[1] log; ARGV: limit, window_ms, member. Returns {1, 0} when taken, else {0, ms until a slot frees}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""

# KEYS[1] log; ARGV: window_ms. Returns {starts in the window, ms until the oldest leaves it}.
_PEEK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then return {0, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {count, math.max(0, tonumber(oldest[2]) + window - now)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a slot frees (0 when allowed)




@lru_cache(maxsize=1)
def _scripts():
    client = shared_client()
    return client.register_script(_ACQUIRE), client.register_script(_PEEK)


def limit_for(queue: str) -> tuple[int, float] | None:
    return settings.QUEUE_RATE_LIMITS.get(queue)


def acquire(queue: str, member: str) -> Decision:
    """Take a start slot for `member` (a job id and attempt) if the queue's limit allows it now."""
    limit = limit_for(queue)
    if limit is None:
        return Decision(True, 0.0)
    count, period = limit
    acquire_script, _ = _scripts()
    allowed, wait_ms = acquire_script(keys=[KEY_PREFIX + queue], args=[count, int(period * 1000), member])
    return Decision(bool(allowed), int(wait_ms) / 1000)


def available(queue: str) -> tuple[int | None, float]:
    """(slots free right now, seconds until the next slot frees); (None, 0) for an unlimited queue."""
    limit = limit_for(queue)
    if limit is None:
        return None, 0.0
    count, period = limit
    _, peek_script = _scripts()
    used, wait_ms = peek_script(keys=[KEY_PREFIX + queue], args=[int(period * 1000)])
    return max(0, count - int(used)), int(wait_ms) / 1000


def starts_in_window(queue: str) -> list[float]:
    """Start times (Redis clock, seconds) still in the window; for benchmarks and tests."""
    return [score / 1000 for _, score in shared_client().zrange(KEY_PREFIX + queue, 0, -1, withscores=True)]


def max_starts_in_any_window(starts: list[float], period: float) -> int:
    """The most starts that fall within any window of `period` seconds (the limit's own measure)."""
    starts = sorted(starts)
    best, left = 0, 0
    for right, t in enumerate(starts):
        while t - starts[left] >= period:
            left += 1
        best = max(best, right - left + 1)
    return best


def reset(queue: str) -> None:
    shared_client().delete(KEY_PREFIX + queue)
