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
from django.db.models import DurationField, ExpressionWrapper, F, Q
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


def busiest_window(starts: list[float], period: float) -> tuple[int, float]:
    """(most starts within any window of `period` seconds, when that window began): the limit's own
    measure, a window [t, t + period) as the log's trimming keeps it."""
    starts = sorted(starts)
    best, at, left = 0, starts[0] if starts else 0.0, 0
    for right, t in enumerate(starts):
        while t - starts[left] >= period:
            left += 1
        if right - left + 1 > best:
            best, at = right - left + 1, starts[left]
    return best, at


def max_starts_in_any_window(starts: list[float], period: float) -> int:
    return busiest_window(starts, period)[0]


# --- the ledger's record of starts: what make bench, make chaos and the tests count, never this
# module's log (which cannot hold more than the limit: it is what the limit is enforced on) --------

def ledger_start_records(queue: str, *, since: datetime | None = None,
                         until: datetime | None = None) -> list[tuple[datetime | None, datetime | None]]:
    """(started_at, slot_at) of every start of the queue's jobs that the ledger holds (started_at
    from `since` until `until`, when given): each failed attempt's that had its slot (its failure
    row), and the current attempt of each succeeded job, and of each running one that has its slot
    (a dead job's last attempt is a failure row). An attempt that failed or runs without a slot never
    started (killed between its claim and its slot, or still asking); a succeeded one without a slot
    did its work past the limit, and is here with slot_at None."""
    def between(rows):
        if since is not None:
            rows = rows.filter(started_at__gte=since)
        return rows if until is None else rows.filter(started_at__lt=until)

    failed = between(JobFailure.objects.filter(queue=queue, slot_at__isnull=False))
    jobs = between(Job.objects.filter(queue=queue)).filter(
        Q(state=Job.State.SUCCEEDED) | Q(state=Job.State.RUNNING, slot_at__isnull=False))
    return [*failed.values_list("started_at", "slot_at"), *jobs.values_list("started_at", "slot_at")]


def ledger_starts(queue: str) -> list[float]:
    """Every start of the queue's jobs at the moment the limiter gave its slot (slot_at, Redis's
    clock), from the ledger: the record make chaos counts, since its PostgreSQL outage makes the
    database's own time of a start (count_starts) trail the slot by up to the outage."""
    return [slot.timestamp() for _, slot in ledger_start_records(queue) if slot is not None]


def started_without_a_slot(queue: str) -> int:
    """Succeeded jobs of a limited queue whose last attempt has no slot: work done past the limit."""
    return sum(1 for _, slot in ledger_start_records(queue) if slot is None)


# How unevenly the database's record of starts may trail the limiter's slots (as a share of the
# period) for a count by that record still to judge the limit: within a quarter, a limiter that
# allows more than a third over its limit shows whatever the spread (one start more in a burst shows
# while the spread is milliseconds, as it is).
MAX_LAG_SPREAD = 0.25
# slot_at is Redis's whole millisecond carried in a float: its rounding, never a start's lag.
_SLOT_ROUNDING = 0.001


@dataclass(frozen=True)
class StartCount:
    """A queue's starts counted by the ledger's started_at (the database's clock)."""

    times: list[float]  # every start's started_at, seconds, sorted
    most: int  # most starts within any window of `window`
    at: float  # when that window began
    window: float  # the period less lag_spread
    lag_spread: float  # the spread of started_at - slot_at over the starts: how unevenly the record trails
    without_slot: int  # starts of a limited queue that never had a slot

    def within(self, count: int, period: float) -> bool:
        """No window held more than `count` starts, none started without a slot, and the record
        trailed the limiter evenly enough for the count to judge."""
        return self.most <= count and not self.without_slot and self.lag_spread <= period * MAX_LAG_SPREAD


def count_starts(records: list[tuple[datetime | None, datetime | None]], period: float) -> StartCount:
    """The busiest window of the starts `records` (ledger_start_records) by their started_at.

    started_at, not slot_at, is the judge: it is written by the database's clock in the statement
    that marks the start (ledger.mark_started), after the limiter answered, so neither the
    limiter's clock nor its log has a say in it, and a start that never asked the limiter is in it
    too. slot_at is the limiter's own clock copied; it only measures how the record trails.

    Each start's record comes one round trip after its slot, and round trips differ: counted in
    windows of the full period, an early start written late and a later one written fast could put
    one start more in a window than the limiter ever allowed. The limiter guarantees that any
    count+1 slots span at least the period; their records then span at least the period less the
    spread of the lags (started_at - slot_at, the clocks' offset cancels), so windows that much
    shorter never hold more than `count` starts from a limiter that kept its limit, while one that
    allows more still shows (the spread is milliseconds; past MAX_LAG_SPREAD the count is no judge)."""
    lags = [(started - slot).total_seconds() for started, slot in records if started and slot]
    spread = max(lags) - min(lags) + _SLOT_ROUNDING if lags else 0.0
    window = max(period - spread, _SLOT_ROUNDING)
    times = sorted(started.timestamp() for started, _ in records if started is not None)
    most, at = busiest_window(times, window)
    return StartCount(times, most, at, window, spread, sum(1 for _, slot in records if slot is None))


def reset(queue: str) -> None:
    shared_client().delete(KEY_PREFIX + queue)
