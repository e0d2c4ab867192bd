"""Global rate limits: a sliding-window log per queue in Redis, shared by every worker on every host.

Each job start takes a slot; a slot frees when its start leaves the window. Both the check and the
taking happen in one Lua script under Redis's own clock (TIME), so hosts with skewed clocks and
concurrent workers can never start more than the limit in any window of the period. A job refused
a slot is not retried in a loop: the script says when the next slot frees, and the job waits in the
ledger until then.

The log is only as good as Redis's memory: a restart, an eviction or a failover to a replica that
missed the last writes would make every slot look free. So each log carries a marker, written when
the log was built on the Redis server that holds it; a log without it (gone, or copied from another
server) is rebuilt from the ledger's record of recent starts before any slot is given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db.models import DurationField, ExpressionWrapper, F
from django.db.models.functions import Now

from workers.models import Job, JobFailure
from workers.redis_client import shared_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "resilience:rate:"

# A start's ledger time is its claim, a moment before its slot is taken in Redis: a start rebuilt
# from the ledger stays in the window this much longer, so that moment never frees a slot early.
REBUILD_MARGIN_MS = 1000

# Every script starts here: Redis's clock, and the marker that says the log was built on this very
# server. The marker is a member of the log itself, scored +inf so trimming never removes it: an
# eviction or a restart takes the log and its marker together, and a replica promoted by a failover
# has another run id, so its copy (which may lack the last starts) is not trusted either. A service
# that hides INFO or the run id from scripts still gets the restart and eviction checks.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local info = redis.pcall('INFO', 'server')
local run_id = type(info) == 'string' and string.match(info, 'run_id:(%w+)') or 'unknown'
local marker = 'trusted:' .. run_id
"""

# KEYS[1] log; ARGV: limit, window_ms, member. Returns {1, the slot's time in ms} when taken, {0, ms
# until a slot frees} when refused, {-1, 0} when the log must be rebuilt first.
_ACQUIRE = _PRELUDE + """
if not redis.call('ZSCORE', KEYS[1], marker) then return {-1, 0} end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) - 1 < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  return {1, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""

# KEYS[1] log; ARGV: window_ms. Returns {starts in the window, ms until the oldest leaves it}, or
# {-1, 0} when the log must be rebuilt first.
_PEEK = _PRELUDE + """
if not redis.call('ZSCORE', KEYS[1], marker) then return {-1, 0} end
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1]) - 1
if count == 0 then return {0, 0} end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {count, math.max(0, tonumber(oldest[2]) + window - now)}
"""

# KEYS[1] log; ARGV: window_ms, margin_ms, then the age (ms, by the database's clock) of each start
# the ledger knows in the window. Builds the log under Redis's clock and marks it trusted, unless
# another process did so first: returns the starts seeded, or -1 when the log was already trusted.
_SEED = _PRELUDE + """
if redis.call('ZSCORE', KEYS[1], marker) then return -1 end
redis.call('DEL', KEYS[1])
local window, margin, seeded = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  local score = now - math.max(0, tonumber(ARGV[i]) - margin)
  if score > now - window then
    redis.call('ZADD', KEYS[1], score, 'ledger:' .. (i - 2))
    seeded = seeded + 1
  end
end
redis.call('ZADD', KEYS[1], '+inf', marker)
return seeded
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a slot frees (0 when allowed)
    at: datetime | None = None  # when the slot was taken, by Redis's clock (None: refused, or no limit)


class LogLost(RuntimeError):
    """The log vanished again right after it was rebuilt (Redis flapping): no slot can be judged."""


@lru_cache(maxsize=1)
def _scripts():
    client = shared_client()
    return client.register_script(_ACQUIRE), client.register_script(_PEEK), client.register_script(_SEED)


def limit_for(queue: str) -> tuple[int, float] | None:
    return settings.QUEUE_RATE_LIMITS.get(queue)


def _trusted_call(script, queue: str, count: int, period: float, args: list,
                  starting_job: str | None = None) -> tuple[int, int]:
    """Run `script` on the queue's log, rebuilding the log from the ledger first if it needs it."""
    for _ in range(2):
        first, second = script(keys=[KEY_PREFIX + queue], args=args)
        if int(first) >= 0:
            return int(first), int(second)
        rebuild(queue, count, period, starting_job=starting_job)
    raise LogLost(f"the rate-limit log of {queue} vanished again as soon as it was rebuilt")


def acquire(queue: str, member: str, *, starting_job: str | None = None) -> Decision:
    """Take a start slot for `member` (unique to this start) if the queue's limit allows it now.

    starting_job: the id of the claimed job asking, whose own claim a rebuild must not count as a
    start already made."""
    limit = limit_for(queue)
    if limit is None:
        return Decision(True, 0.0)
    count, period = limit
    acquire_script, _, _ = _scripts()
    allowed, second = _trusted_call(acquire_script, queue, count, period, [count, int(period * 1000), member],
                                    starting_job)
    if allowed:
        return Decision(True, 0.0, datetime.fromtimestamp(second / 1000, UTC))
    return Decision(False, second / 1000)


def available(queue: str) -> tuple[int | None, float]:
    """(slots free right now, seconds until the next slot frees); (None, 0) for an unlimited queue."""
    limit = limit_for(queue)
    if limit is None:
        return None, 0.0
    count, period = limit
    _, peek_script, _ = _scripts()
    used, wait_ms = _trusted_call(peek_script, queue, count, period, [int(period * 1000)])
    return max(0, count - used), wait_ms / 1000


def ledger_start_ages(queue: str, period: float, most: int, *, starting_job: str | None = None) -> list[float]:
    """Ages in seconds (database clock), youngest first, of the queue's starts within `period`, at
    most `most` of them (the youngest `most` are all a full window needs to free its slots in time).

    The ledger keeps one started_at per job, overwritten by each attempt, so this counts
    conservatively: the current attempt of running and succeeded jobs, and each failed attempt by
    its failed_at, which comes after its start (so it leaves the window later, never sooner). Jobs
    that are waiting again are left out: their started_at is a failed attempt's (counted by its
    failure) or a claim refused a slot by this very limit (ledger.defer), which was no start; so is
    `starting_job`, claimed but asking for its slot now. Another job claimed but not yet started
    counts, and its start again when it comes: an over-count for one window, never an under-count."""
    since = Now() - timedelta(seconds=period)

    def ages(rows, field: str) -> list[float]:
        rows = rows.filter(**{f"{field}__gt": since}).annotate(
            age=ExpressionWrapper(Now() - F(field), output_field=DurationField())
        ).order_by(f"-{field}").values_list("age", flat=True)[:most]
        return [age.total_seconds() for age in rows]

    jobs = Job.objects.filter(queue=queue, state__in=[Job.State.RUNNING, Job.State.SUCCEEDED])
    if starting_job is not None:
        jobs = jobs.exclude(id=starting_job)
    started = ages(jobs, "started_at")
    failed = ages(JobFailure.objects.filter(queue=queue), "failed_at")
    return sorted(started + failed)[:most]


def rebuild(queue: str, count: int, period: float, *, starting_job: str | None = None) -> int:
    """Seed the queue's missing log from the ledger (ages mapped onto Redis's clock in the script,
    so the two clocks never need to agree). Returns the starts seeded, or -1 when another process
    rebuilt it first: the script checks the marker again, so two processes never both seed."""
    _, _, seed_script = _scripts()
    ages = ledger_start_ages(queue, period, count, starting_job=starting_job)
    seeded = int(seed_script(keys=[KEY_PREFIX + queue],
                             args=[int(period * 1000), REBUILD_MARGIN_MS, *(int(a * 1000) for a in ages)]))
    if seeded >= 0:
        logger.warning("rate limit of %s: its log in Redis was missing (restart, eviction or failover); rebuilt "
                       "from the ledger with %d start(s) in the last %gs", queue, seeded, period)
    return seeded


def starts_in_window(queue: str) -> list[float]:
    """Start times (Redis clock, seconds) still in the window; for benchmarks and tests."""
    log = shared_client().zrangebyscore(KEY_PREFIX + queue, "-inf", "(+inf", withscores=True)
    return [score / 1000 for _, score in log]


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
