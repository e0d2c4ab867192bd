"""make bench's rate-limit figures fail on a limiter that allows too much: the same counting
(bench/limits.py over the ledger) run on starts the real runner made through a limiter whose limit
was raised behind the bench's back."""
import time

import pytest

from bench.limits import database_now, limit_figures
from workers import ledger, ratelimit
from workers.probe import enqueue_probe
from workers.tasks import probe

pytestmark = pytest.mark.django_db(transaction=True)
LIMIT = (3, 1.0)


def run_backlog(jobs: int, seconds: float) -> None:
    """Run every due job through the runner (claim, slot, start, work, completion) for `seconds`."""
    for _ in range(jobs):
        enqueue_probe("delivery")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for due in ledger.take_due_jobs("delivery", jobs):
            probe.run(due.job_id, due.token)
        time.sleep(0.02)


@pytest.mark.parametrize("allowed", [LIMIT[0], 2 * LIMIT[0]], ids=["limiter at the limit", "limiter allowing twice"])
def test_the_bench_counts_a_limiter_that_allows_too_much_as_not_met(settings, redis_client, allowed):
    settings.QUEUE_RATE_LIMITS = {**settings.QUEUE_RATE_LIMITS, "delivery": (allowed, LIMIT[1])}
    ratelimit.reset("delivery")
    since = database_now()
    run_backlog(4 * LIMIT[0], 1.8)

    figures = limit_figures("delivery", LIMIT, since, [(since.timestamp(), database_now().timestamp())])
    assert len(figures.starts.times) >= 2 * allowed  # two windows' worth ran
    assert figures.ok == (allowed == LIMIT[0]), figures.row()
    assert figures.starts.most == allowed, figures.row()
