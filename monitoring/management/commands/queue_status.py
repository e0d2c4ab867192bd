"""Per queue, the ledger's backlog beside what Redis holds: `redis-cli LLEN <queue>` alone misleads here.

The dispatcher publishes a queue's jobs only as its workers have room (at most concurrency x pools
messages), so Redis's list stays short while the real backlog waits in PostgreSQL (docs/operating.md:
Looking at Redis).
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from monitoring.health import collect_figures
from monitoring.metrics import broker_queue_lengths
from resilience.db import db_now
from workers import ratelimit

LEDGER_STATES = ("pending", "retry", "dispatched", "running")


class Command(BaseCommand):
    help = ("Per queue: the ledger's unfinished jobs by state, the messages in Redis (LLEN) and the "
            "rate limiter's free slots.")

    def handle(self, *args, **options) -> None:
        figures = collect_figures(db_now())
        lengths = broker_queue_lengths()
        header = ["queue", *LEDGER_STATES, "redis LLEN", "rate limit", "free now", "paused"]
        rows = [header]
        for name, q in figures.items():
            rows.append([name, *(str(q.by_state.get(state, 0)) for state in LEDGER_STATES),
                         "no answer" if lengths is None else str(lengths.get(name, 0)),
                         *self._limiter(name), f"yes: {q.paused.reason}" if q.paused else "no"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if lengths is None:
            self.stdout.write("Redis did not answer: the ledger's figures stand, nothing is lost while it is away.")

    @staticmethod
    def _limiter(queue: str) -> list[str]:
        limit = ratelimit.limit_for(queue)
        if limit is None:
            return ["none", "-"]
        count, period = limit
        try:
            free, wait = ratelimit.available(queue)
        except Exception as exc:  # Redis away, or its log lost: say so, the ledger's columns still help
            return [f"{count}/{period:g}s", f"unknown ({type(exc).__name__})"]
        return [f"{count}/{period:g}s", f"{free}" + (f" (next in {wait:.1f}s)" if not free else "")]
