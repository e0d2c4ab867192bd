"""The per-minute counts behind the dashboard's charts (workers.job_minutes): written by the ledger's
trigger as real jobs run through run_job on real PostgreSQL, folded and pruned by the leader's duties."""
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Sum
from django.db.models.functions import Now
from django.utils import timezone

from resilience.db import db_now
from workers import job_minutes, ledger, registry
from workers.errors import InvalidData, MissingResource, Postpone
from workers.job_minutes import WAIT_BUCKETS, fold_job_minutes, minute_counts, quantile_bound, wait_histograms
from workers.models import Job, JobMinute, JobWaitMinute
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "delivery"


def claimable(created_ago: float = 0.0):
    job = ledger.enqueue(QUEUE, "test.task", {})
    if created_ago:
        Job.objects.filter(pk=job.pk).update(created_at=Now() - timedelta(seconds=created_ago))
    # This job and no other: a retry of an earlier one, due in 0.1 s, would be taken first
    Job.objects.filter(state__in=Job.WAITING_STATES).exclude(pk=job.pk).update(
        next_attempt_at=Now() + timedelta(hours=1))
    [d] = ledger.take_due_jobs(QUEUE, 1)
    assert d.job_id == str(job.pk)
    return job, d


def raising(exc):
    def handler(job):
        raise exc
    return handler


def totals(queue: str = QUEUE) -> dict[str, int]:
    sums = JobMinute.objects.filter(queue=queue).aggregate(
        started=Sum("started"), succeeded=Sum("succeeded"), failed=Sum("failed"), rejected=Sum("rejected"))
    return {k: v or 0 for k, v in sums.items()}


def waits(queue: str = QUEUE) -> dict[int, int]:
    rows = JobWaitMinute.objects.filter(queue=queue).values("bucket").annotate(total=Sum("n"))
    return {row["bucket"]: row["total"] for row in rows if row["total"]}


def run_a_mix_of_jobs():
    """Three successes (one enqueued 45 s before it started), a retry, a dead job, a rejected one, a
    postponed one (its attempt given back) and one whose worker was lost (reaped)."""
    for ago in (45.0, 0.0, 0.0):
        _, d = claimable(ago)
        assert run_job(d.job_id, d.token, worker="w", handler=lambda job: None) == "succeeded"
    _, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=raising(ConnectionError("reset"))) == "retry"
    _, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=raising(MissingResource("gone"))) == "dead"
    _, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=raising(InvalidData("bad email"))) == "dead"
    _, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=raising(Postpone(600, "later"))) == "deferred"
    lost, d = claimable()
    assert ledger.claim(d.job_id, d.token, "w") is not None
    Job.objects.filter(pk=lost.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
    assert ledger.reap_expired_leases() == 1


def test_real_jobs_are_counted_per_minute_as_they_start_and_end():
    run_a_mix_of_jobs()
    assert totals() == {"started": 7, "succeeded": 3, "failed": 3, "rejected": 1}
    # First attempts' waits: the job enqueued 45 s earlier in [30 s, 60 s), the six others under 0.1 s
    # (the postponed one's start was taken back with its attempt).
    assert waits() == {0: 6, WAIT_BUCKETS.index(30) + 1: 1}
    assert totals("lead-processing") == {"started": 0, "succeeded": 0, "failed": 0, "rejected": 0}


def test_a_retry_counts_its_start_but_not_its_backoff_as_a_wait():
    job, d = claimable()
    assert run_job(d.job_id, d.token, worker="w", handler=raising(ConnectionError("reset"))) == "retry"
    Job.objects.filter(pk=job.pk).update(next_attempt_at=Now())
    [d] = ledger.take_due_jobs(QUEUE, 1)
    assert d.job_id == str(job.pk)
    assert run_job(d.job_id, d.token, worker="w", handler=lambda j: None) == "succeeded"
    assert totals() == {"started": 2, "succeeded": 1, "failed": 1, "rejected": 0}
    assert sum(waits().values()) == 1


def test_a_start_moved_to_its_rate_limit_slot_counts_once_in_its_new_minute():
    job, d = claimable()
    claimed = ledger.claim(d.job_id, d.token, "w")
    # Its claim a minute before its slot freed (as if the limiter had it wait)
    Job.objects.filter(pk=job.pk).update(started_at=Now() - timedelta(minutes=2))
    assert ledger.mark_started(claimed, timezone.now())
    by_minute = minute_counts(db_now() - timedelta(hours=1))[QUEUE]
    now_minute = db_now().replace(second=0, microsecond=0)
    assert sum(m["started"] for m in by_minute.values()) == 1
    assert by_minute[now_minute]["started"] == 1


def test_a_lease_renewal_writes_no_row():
    _, d = claimable()
    claimed = ledger.claim(d.job_id, d.token, "w")
    before = JobMinute.objects.count(), JobWaitMinute.objects.count()
    assert ledger.renew_lease(claimed) and ledger.renew_leases([claimed])
    assert (JobMinute.objects.count(), JobWaitMinute.objects.count()) == before


def test_folding_keeps_every_figure_in_one_row_per_minute():
    run_a_mix_of_jobs()
    before_totals, before_waits = totals(), waits()
    assert JobMinute.objects.filter(folded=False).count() > 1
    fold_job_minutes()
    assert (totals(), waits()) == (before_totals, before_waits)
    assert not JobMinute.objects.filter(folded=False).exists()
    keys = JobMinute.objects.values_list("queue", "minute")
    assert len(keys) == len(set(keys))
    # New deltas after a fold fold into the folded row of their minute
    _, d = claimable()
    run_job(d.job_id, d.token, worker="w", handler=lambda job: None)
    fold_job_minutes()
    assert totals()["succeeded"] == before_totals["succeeded"] + 1
    assert JobMinute.objects.filter(queue=QUEUE).count() == len(set(JobMinute.objects.values_list("queue", "minute")))


def test_rows_past_the_retention_are_pruned_by_the_registered_pruner(settings):
    settings.CHART_RETENTION_DAYS = 2
    old, recent = timezone.now() - timedelta(days=3), timezone.now() - timedelta(days=1)
    for minute in (old, old + timedelta(minutes=1), recent):
        JobMinute.objects.create(queue=QUEUE, minute=minute, started=1, folded=True)
        JobWaitMinute.objects.create(queue=QUEUE, minute=minute, bucket=0, n=1, folded=True)
    [pruner] = [p for p in registry.pruners() if p.name == job_minutes.PRUNE_KIND]
    assert pruner.prune(3) == 3
    assert pruner.prune(10) == 1
    assert pruner.prune(10) == 0
    assert list(JobMinute.objects.values_list("minute", flat=True)) == [recent]
    assert list(JobWaitMinute.objects.values_list("minute", flat=True)) == [recent]


def test_the_fold_is_a_leader_duty():
    assert "folding the per-minute job counts" in {duty.name for duty in registry.duties()}


def test_quantiles_are_the_upper_bound_of_their_bucket():
    histogram = {0: 50, 3: 45, 14: 5}  # 50 under 0.1 s, 45 in [0.5 s, 1 s), 5 an hour or more
    assert quantile_bound(histogram, 0.5) == {"seconds": 0.1, "atLeast": None}
    assert quantile_bound(histogram, 0.95) == {"seconds": 1, "atLeast": None}
    assert quantile_bound(histogram, 0.99) == {"seconds": None, "atLeast": 3600.0}
    assert quantile_bound({}, 0.5) is None


def test_wait_histograms_read_the_window():
    JobWaitMinute.objects.create(queue=QUEUE, minute=timezone.now() - timedelta(hours=7), bucket=5, n=9)
    JobWaitMinute.objects.create(queue=QUEUE, minute=timezone.now(), bucket=2, n=4)
    assert wait_histograms(timezone.now() - timedelta(hours=6)) == {QUEUE: {2: 4}}


def test_the_triggers_buckets_are_the_code_s():
    migration = Path(job_minutes.__file__).parent / "migrations" / "0010_job_minutes.py"
    array = re.search(r"ARRAY\[([^\]]*)\]", migration.read_text()).group(1)
    assert tuple(float(x) for x in array.split(",")) == tuple(float(x) for x in WAIT_BUCKETS)


def test_a_row_made_running_by_hand_with_no_start_time_is_not_a_start():
    job = ledger.enqueue(QUEUE, "test.task", {})
    Job.objects.filter(pk=job.pk).update(state="running")
    Job.objects.filter(pk=job.pk).update(state="succeeded", finished_at=Now())
    assert totals() == {"started": 0, "succeeded": 1, "failed": 0, "rejected": 0}
