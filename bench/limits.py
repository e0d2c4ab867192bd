"""make bench, the rate limits' figures: every start counted from the ledger's record of it
(workers.ratelimit.count_starts, by the database's clock), never from the limiter's own log in
Redis, which cannot hold more than the limit since it is what the limit is enforced on (and which a
Redis that lost its data refills from the ledger, so polling it counted rebuilt entries as starts).

No import-time side effects (unlike bench/run.py), so tests/bench can run the same counting against
a limiter made to allow too much.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workers.ratelimit import MAX_LAG_SPREAD, StartCount, count_starts, ledger_start_records


def database_now() -> datetime:
    """The database's clock, the one the counted starts carry: phases are cut by it too."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        return cur.fetchone()[0]


def reuse_ratio(starts: list[float], limit: int, period: float) -> float | None:
    """How promptly freed slots are used: period / mean(time from start i to start i+limit).

    With a backlog a sliding-window limiter lets start i+limit happen exactly one period after
    start i; any delay (dispatch latency, a dead pool's held jobs) lengthens the gap. 1.0 = the
    full rate. Unlike counting starts in a fixed interval, this is not skewed by where the
    repeating bursts of a sliding window fall. None: no more than `limit` starts (a phase shorter
    than two windows, as --quick's after the kill), nothing to measure."""
    starts = sorted(starts)
    gaps = [starts[i + limit] - starts[i] for i in range(len(starts) - limit)]
    return period / (sum(gaps) / len(gaps)) if gaps else None


@dataclass(frozen=True)
class LimitFigures:
    """One queue's starts in a phase of the bench, against its configured limit."""

    queue: str
    count: int
    period: float
    starts: StartCount
    achieved: tuple[float | None, ...]  # reuse_ratio per sub-phase

    @property
    def ok(self) -> bool:
        return self.starts.within(self.count, self.period)

    @property
    def ratio(self) -> float:
        return self.starts.most / self.count

    def limit(self) -> str:
        return f"{self.count}/{self.period:g}s"

    def most(self) -> str:
        """The busiest window's count, with whatever else makes the count fail."""
        text = str(self.starts.most)
        if self.starts.without_slot:
            text += f" ({self.starts.without_slot} without a slot)"
        if self.starts.lag_spread > self.period * MAX_LAG_SPREAD:
            text += " (record too uneven to judge)"
        return text

    def row(self) -> list[str]:
        return [self.queue, self.limit(), self.most(), f"{self.starts.lag_spread * 1000:.0f} ms",
                *("too few starts" if a is None else f"{a:.1%}" for a in self.achieved)]


HEADERS = ["queue", "limit", "most starts in any window (ledger)", "record's lag spread"]


def limit_figures(queue: str, limit: tuple[int, float], since: datetime,
                  phases: list[tuple[float, float]]) -> LimitFigures:
    """The queue's starts from `since` (database clock), counted against `limit`; the reuse ratio
    of the starts within each (from, until) of `phases` (seconds, database clock)."""
    count, period = limit
    starts = count_starts(ledger_start_records(queue, since=since), period)
    achieved = tuple(reuse_ratio([t for t in starts.times if begin <= t < end], count, period)
                     for begin, end in phases)
    return LimitFigures(queue, count, period, starts, achieved)


def summary(figures: list[LimitFigures]) -> tuple[str, str, bool]:
    """(each queue's count of its limit, the worst ratio, all within) for the targets table."""
    text = ", ".join(f"{f.queue} {f.most()} of {f.limit()}" for f in figures)
    return text, f"{max(f.ratio for f in figures):.2f}", all(f.ok for f in figures)
