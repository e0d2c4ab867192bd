"""manage.py queue_status: the ledger's backlog beside Redis's list length and the limiter's state,
on real PostgreSQL and Redis (issue 20, item 7)."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from workers import ledger, ratelimit
from workers.pausing import pause_queue

pytestmark = pytest.mark.django_db(transaction=True)


def status() -> dict[str, list[str]]:
    out = io.StringIO()
    call_command("queue_status", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["queue", "pending", "retry", "dispatched", "running", "redis", "LLEN", "rate", "limit",
                                "free", "now", "paused"]
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_the_backlog_waits_in_the_ledger_while_redis_holds_what_was_published(redis_client, settings):
    settings.QUEUE_RATE_LIMITS = {**settings.QUEUE_RATE_LIMITS, "delivery": (10, 60.0)}  # tests run unlimited
    for n in range(5):
        ledger.enqueue("lead-processing", "leads.process_lead", {"n": n})
    ledger.take_due_jobs("lead-processing", 2)  # the dispatcher published two
    redis_client.rpush("lead-processing", "m1", "m2")
    for member in ("a", "b"):
        assert ratelimit.acquire("delivery", member).allowed
    pause_queue("email-sending", "provider incident", "ops")

    rows = status()

    assert rows["lead-processing"][:5] == ["3", "0", "2", "0", "2"]
    assert rows["delivery"][:5] == ["0", "0", "0", "0", "0"]
    assert rows["delivery"][5:7] == ["10/60s", "8"]
    assert rows["lead-processing"][5:7] == ["none", "-"]
    assert rows["email-sending"][-3:] == ["yes:", "provider", "incident"]
    assert rows["site-generation"][-1] == "no"
