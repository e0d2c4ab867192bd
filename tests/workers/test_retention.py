"""Pruning the ledger keeps lifetime figures exact and keeps what a requeue needs."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django_celery_results.models import TaskResult

from dlq.models import DeadLetter
from dlq.services import record_dead_letter
from leads.models import Lead, LeadSubmission, WebhookIdempotencyKey
from monitoring.health import health_report
from resilience.db import db_now
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


def dead_letter(*, resolved_days_ago: float | None, job_id: str | None = None, job_data: dict | None = None):
    """An entry resolved that many days ago, or unresolved (None) and failed 60 days ago."""
    entry = record_dead_letter(queue_name=QUEUE, job_id=job_id, job_data=job_data or {}, error_message="x",
                               error_stack="", attempts_made=3)
    old = db_now() - timedelta(days=60)
    if resolved_days_ago is None:
        DeadLetter.objects.filter(pk=entry.pk).update(failed_at=old)
    else:
        DeadLetter.objects.filter(pk=entry.pk).update(failed_at=old, resolved=True, resolved_by="ops",
                                                      resolved_at=db_now() - timedelta(days=resolved_days_ago))
    return entry


def test_resolved_dead_letter_entries_go_after_their_retention_unresolved_ones_stay():
    recent = dead_letter(resolved_days_ago=2)
    old = dead_letter(resolved_days_ago=40)
    waiting = dead_letter(resolved_days_ago=None)  # failed long ago, still waiting for a person
    pruned = prune_ledger(batch_size=1)  # DLQ_RESOLVED_RETENTION_DAYS=30
    assert pruned.by_app["resolved dead-letter entries"] == 1
    assert set(DeadLetter.objects.values_list("pk", flat=True)) == {recent.pk, waiting.pk}
    assert not DeadLetter.objects.filter(pk=old.pk).exists()


def submission(days_ago: float, *, job: Job | None = None) -> LeadSubmission:
    row = LeadSubmission.objects.create(payload={"email": "a@b.io"}, job_id=job.id if job else None)
    LeadSubmission.objects.filter(pk=row.pk).update(received_at=db_now() - timedelta(days=days_ago))
    if job is not None:
        Job.objects.filter(pk=job.pk).update(payload={"submission_id": row.pk})
    return row


def lead_job(state: str) -> Job:
    return Job.objects.create(queue="lead-processing", task="leads.process_lead", state=state,
                              next_attempt_at=db_now())


def test_old_submissions_go_unless_an_unfinished_job_or_an_unresolved_entry_needs_them_and_leads_stay():
    lead = Lead.objects.create(email="a@b.io", status="qualified", score=80)
    recent = submission(3)
    done = submission(40, job=lead_job("succeeded"))
    LeadSubmission.objects.filter(pk=done.pk).update(lead=lead, status="qualified")
    orphan = submission(40)  # a job long pruned from the ledger
    waiting = {state: submission(40, job=lead_job(state)) for state in ("pending", "retry", "dispatched", "running")}
    dead_waiting_job = lead_job("dead")
    dead_waiting = submission(40, job=dead_waiting_job)
    dead_letter(resolved_days_ago=None, job_id=str(dead_waiting_job.id), job_data={"submission_id": dead_waiting.pk})
    # The entry alone ties this one (its job was pruned): its data names the submission.
    by_data = submission(40)
    dead_letter(resolved_days_ago=None, job_id=None, job_data={"submission_id": by_data.pk})
    dead_handled_job = lead_job("dead")
    dead_handled = submission(40, job=dead_handled_job)
    dead_letter(resolved_days_ago=1, job_id=str(dead_handled_job.id), job_data={"submission_id": dead_handled.pk})

    pruned = prune_ledger(batch_size=2)  # SUBMISSION_RETENTION_DAYS=30

    kept = {recent.pk, dead_waiting.pk, by_data.pk} | {row.pk for row in waiting.values()}
    assert set(LeadSubmission.objects.values_list("pk", flat=True)) == kept
    assert pruned.by_app["lead submissions"] == 3  # done, orphan, dead_handled
    assert list(Lead.objects.values_list("email", flat=True)) == ["a@b.io"]  # business data: never pruned
    assert prune_ledger().by_app["lead submissions"] == 0


def task_result(task_id: str, days_ago: float) -> TaskResult:
    row = TaskResult.objects.create(task_id=task_id, status="SUCCESS", task_name="emails.send")
    TaskResult.objects.filter(pk=row.pk).update(date_done=db_now() - timedelta(days=days_ago))
    return row


def test_celery_results_leave_with_their_jobs_and_old_results_of_no_job_go_too():
    pruned_job, = finished("succeeded", 1, days_ago=10)
    kept_job, = finished("succeeded", 1, days_ago=1)
    unresolved_job, = finished("dead", 1, days_ago=30)
    dead_letter(resolved_days_ago=None, job_id=str(unresolved_job.id))
    for job in (pruned_job, kept_job, unresolved_job):
        task_result(str(job.id), days_ago=(db_now() - job.finished_at).days)
    task_result("not-a-ledger-task-old", days_ago=10)
    task_result("not-a-ledger-task-new", days_ago=1)

    pruned = prune_ledger(retention_days=7)

    assert pruned.jobs == 1 and pruned.task_results == 1
    assert set(TaskResult.objects.values_list("task_id", flat=True)) == {
        str(kept_job.id), str(unresolved_job.id), "not-a-ledger-task-new"}  # a requeue can still be traced


def test_expired_webhook_idempotency_keys_go_with_the_hourly_pruning_even_when_no_webhook_comes():
    for key, hours_ago in (("fresh", 1), ("stale", 25)):
        row = WebhookIdempotencyKey.objects.create(key_sha256=key, body_sha256="0" * 64, status_code=202, response={})
        WebhookIdempotencyKey.objects.filter(pk=row.pk).update(created_at=db_now() - timedelta(hours=hours_ago))

    assert prune_ledger().by_app["expired webhook idempotency keys"] == 1
    assert list(WebhookIdempotencyKey.objects.values_list("key_sha256", flat=True)) == ["fresh"]
