"""The leader's duties (workers.duties): each its own, none holding the dispatch round; and what the
apps registered (workers.registry)."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.core import checks
from django.db import connection
from django.db.models.functions import Now

from workers import ledger, registry
from workers.dispatcher import Dispatcher
from workers.duties import DutyRunner
from workers.leader import PostgresLeadership
from workers.models import Job
from workers.registry import Duty
from workers.retention import prune_slice


@pytest.mark.django_db(transaction=True)
def test_a_duty_that_hangs_does_not_hold_the_round(redis_client, monkeypatch):
    """A duty stuck in its turn: the leader goes on publishing (the round has its own thread)."""
    entered, release = threading.Event(), threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(30)

    monkeypatch.setattr(registry, "_duties", {**registry._duties, "stuck": Duty("stuck", stuck, every=3600)})
    d = Dispatcher(leadership=PostgresLeadership(), interval=0.01)
    runner = threading.Thread(target=d.run_forever, daemon=True)
    runner.start()
    try:
        assert entered.wait(10), "the duty never ran"
        job = ledger.enqueue("lead-processing", "leads.process_lead", {})
        deadline = time.monotonic() + 10
        while Job.objects.get(pk=job.pk).state != "dispatched" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Job.objects.get(pk=job.pk).state == "dispatched"  # published while the duty hangs
        assert not release.is_set()
    finally:
        release.set()
        d.stop()
        runner.join(15)
    assert not runner.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_duty_that_fails_is_logged_once_and_the_others_run(caplog):
    ran = []

    def broken() -> None:
        raise RuntimeError("the sweep broke")

    duties = [Duty("a broken one", broken, every=0.001), Duty("a good one", lambda: ran.append(1), every=0.001)]
    runner = DutyRunner(lambda: duties)
    with caplog.at_level(logging.WARNING, logger="workers.duties"):
        for _ in range(3):
            runner.next_at.clear()
            assert runner.run_due() == ["a broken one", "a good one"]
    assert len(ran) == 3
    assert [r.getMessage() for r in caplog.records].count(
        "the leader's duty 'a broken one' failed (the sweep broke); trying again in 0.001 s") == 1


@pytest.mark.django_db(transaction=True)
def test_a_statement_that_hangs_ends_at_the_duty_s_slice(caplog):
    ran = []

    def hangs() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(30)")

    duties = [Duty("hangs", hangs, every=60, slice_seconds=0.2), Duty("next", lambda: ran.append(1), every=60)]
    with caplog.at_level(logging.WARNING, logger="workers.duties"):
        assert DutyRunner(lambda: duties).run_due() == ["hangs", "next"]
    assert ran == [1]
    # PostgreSQL cut the statement at the slice (else the turn would have waited the 30 s out and passed).
    assert "canceling statement due to statement timeout" in caplog.records[0].getMessage()


@pytest.mark.django_db(transaction=True)
def test_a_duty_with_more_to_do_comes_back_soon_one_that_is_done_waits_its_interval():
    now = [1000.0]
    duties = [Duty("more", lambda: True, every=3600), Duty("done", lambda: False, every=3600)]
    runner = DutyRunner(lambda: duties, clock=lambda: now[0])
    assert runner.run_due() == ["more", "done"]
    now[0] += 1
    assert runner.run_due() == ["more"]
    now[0] += 3600
    assert runner.run_due() == ["more", "done"]


@pytest.mark.django_db
def test_pruning_does_a_bounded_slice_and_says_there_is_more():
    for _ in range(6):
        job = ledger.enqueue("lead-processing", "leads.process_lead", {})
        Job.objects.filter(pk=job.pk).update(state="succeeded", finished_at=Now() - timedelta(days=30))
    pruned, more = prune_slice(retention_days=7, seconds=0, batch_size=2)
    assert (pruned.jobs, more) == (2, True)  # one batch, then the slice was over
    pruned, more = prune_slice(retention_days=7, seconds=60, batch_size=2)
    assert (pruned.jobs, more) == (4, False)
    assert not Job.objects.exists()


def test_every_configured_queue_has_its_app_and_the_gates_and_duties_are_registered(settings):
    assert {name: q.app for name, q in registry.queues().items()} == {
        "lead-processing": "leads", "site-generation": "sites", "email-sending": "emails", "delivery": "delivery"}
    assert [g.name for g in registry.gates("site-generation")] == ["AI budget"]
    assert [g.name for g in registry.gates("email-sending")] == ["email breaker"]
    assert {d.name for d in registry.duties()} >= {"AI budget gate", "email breaker gate", "pruning",
                                                   "folding the job counts"}
    assert [k.name for k in registry.keepers()] == ["unresolved dead letters"]
    assert checks.run_checks() == [] or all(m.id != "workers.E001" for m in checks.run_checks())
    settings.QUEUE_NAMES = (*settings.QUEUE_NAMES, "fax-sending")
    assert registry.missing() == ["queue 'fax-sending' is configured (QUEUE_NAMES) but no installed app registers it"]
    with pytest.raises(ValueError, match="registered by leads and sites"):
        registry.queue("lead-processing", task="x", app="sites")
