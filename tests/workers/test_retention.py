"""Pruning the ledger keeps lifetime figures exact and keeps what a requeue needs."""
from datetime import timedelta

import pytest
from django.core.management import call_command

from dlq.services import record_dead_letter
from workers.health import db_now, health_report
from workers.models import Job, JobFailure, QueueDailyStats, WorkerHeartbeat
from workers.retention import prune_ledger

pytestmark = pytest.mark.django_db

QUEUE = "email-sending"


def finished(state: str, count: int, days_ago: float, failures: int = 0) -> list[Job]:
    at = db_now() - timedelta(days=days_ago)
    jobs = Job.objects.bulk_create([Job(queue=QUEUE, task="emails.send", state=state, next_attempt_at=at,
                                        finished_at=at, started_at=at) for _ in range(count)])
    for job in jobs[:failures]:
        JobFailure.objects.create(job=job, queue=QUEUE, attempt=1, error="SMTP 451")
    return jobs


def lifetime() -> tuple[int, int]:
    entry = next(e for e in health_report()["workers"] if e["name"] == QUEUE)
    return entry["completed"], entry["failed"]


def test_old_finished_jobs_move_to_daily_statistics_and_lifetime_counts_stay_the_same():
    finished("succeeded", 30, days_ago=10, failures=4)
    finished("dead", 2, days_ago=10)
    finished("succeeded", 5, days_ago=1)
    before = lifetime()
    pruned = prune_ledger(retention_days=7, batch_size=7)  # several batches
    assert pruned.jobs == 32
    assert lifetime() == before == (35, 2)
    [stats] = QueueDailyStats.objects.all()
    assert (stats.queue, stats.succeeded, stats.dead, stats.failed_attempts) == (QUEUE, 30, 2, 4)
    assert Job.objects.count() == 5 and not JobFailure.objects.exists()
    assert prune_ledger(retention_days=7).jobs == 0  # nothing counted twice


def test_dead_jobs_with_an_unresolved_dead_letter_entry_stay_for_a_requeue():
    waiting, handled = finished("dead", 2, days_ago=30)
    for job, resolved in ((waiting, False), (handled, True)):
        entry = record_dead_letter(queue_name=QUEUE, job_id=str(job.id), job_data={}, error_message="x",
                                   error_stack="", attempts_made=3)
        entry.resolved = resolved
        entry.save()
    assert prune_ledger(retention_days=7).jobs == 1
    assert list(Job.objects.values_list("id", flat=True)) == [waiting.id]


def test_unfinished_jobs_and_recent_heartbeats_are_kept_old_heartbeats_go(capsys):
    old = db_now() - timedelta(days=30)
    Job.objects.create(queue=QUEUE, task="emails.send", state="retry", next_attempt_at=old)
    for name, beat in (("gone@primary.h", old), ("live@primary.h", db_now())):
        WorkerHeartbeat.objects.create(name=name, pool="primary", queue=QUEUE, host="h", pid=1, started_at=beat,
                                       beat_at=beat, expires_at=beat + timedelta(seconds=45))
    call_command("prune_ledger", "--days", "7")
    assert "Pruned 0 finished job(s) older than 7 day(s)" in capsys.readouterr().out
    assert Job.objects.count() == 1
    assert list(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["live@primary.h"]


def test_rejected_jobs_keep_their_own_count_in_the_daily_statistics():
    rejected, failed = finished("dead", 2, days_ago=10)
    Job.objects.filter(pk=rejected.pk).update(rejected=True)
    for job in (rejected, failed):
        entry = record_dead_letter(queue_name=QUEUE, job_id=str(job.id), job_data={}, error_message="x",
                                   error_stack="", attempts_made=1)
        entry.resolved = True
        entry.save()
    finished("succeeded", 3, days_ago=10)
    before = next(e for e in health_report()["workers"] if e["name"] == QUEUE)
    assert prune_ledger(retention_days=7).jobs == 5
    [stats] = QueueDailyStats.objects.all()
    assert (stats.succeeded, stats.dead, stats.rejected) == (3, 2, 1)
    after = next(e for e in health_report()["workers"] if e["name"] == QUEUE)
    assert (after["completed"], after["failed"], after["rejected"]) == (before["completed"], before["failed"],
                                                                        before["rejected"]) == (3, 1, 1)
