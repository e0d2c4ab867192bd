"""Pruning the ledger: finished jobs older than LEDGER_RETENTION_DAYS leave it, and their counts move
to QueueDailyStats in the same transaction, so lifetime figures neither drop nor double. Celery's
result of each job (django-celery-results' TaskResult, under the job's id) goes with its job.

A dead job whose dead-letter entry is still unresolved stays: requeueing it needs its ledger row.
The other records that grow with traffic go after their own retention: resolved dead-letter entries
(DLQ_RESOLVED_RETENTION_DAYS) and raw lead submissions (SUBMISSION_RETENTION_DAYS), except a
submission that an unfinished job or an unresolved entry still needs; webhook idempotency keys after
their 24 h. Leads are business data: never.
The dispatcher's leader runs this once an hour; `manage.py prune_ledger` runs it by hand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Count, F, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, Now, TruncDate
from django_celery_results.models import TaskResult

from dlq.models import DeadLetter
from leads import idempotency
from leads.models import LeadSubmission
from workers.models import Job, JobFailure, QueueDailyStats, WorkerHeartbeat

logger = logging.getLogger(__name__)
State = Job.State


@dataclass
class Pruned:
    jobs: int = 0
    heartbeats: int = 0
    task_results: int = 0  # results of no ledger job; a pruned job's result goes with it, uncounted
    dead_letters: int = 0
    submissions: int = 0
    idempotency_keys: int = 0


def _prunable(cutoff):
    unresolved = DeadLetter.objects.filter(resolved=False, job_id__isnull=False).values("job_id")
    return (
        Job.objects.filter(state__in=Job.FINISHED_STATES, finished_at__lt=cutoff)
        # DeadLetter.job_id is text (the contract's column): compare it with the job id as text.
        .annotate(id_text=Cast("id", CharField()))
        .exclude(Q(state=State.DEAD) & Q(id_text__in=unresolved))
    )


def prune_batch(cutoff, limit: int) -> int:
    """Move up to `limit` old finished jobs into the daily statistics; returns how many."""
    with transaction.atomic():
        ids = list(_prunable(cutoff).select_for_update(skip_locked=True, of=("self",))
                   .values_list("id", flat=True)[:limit])
        if not ids:
            return 0
        batch = Job.objects.filter(id__in=ids)
        days = batch.annotate(day=TruncDate("finished_at")).values("queue", "day").annotate(
            succeeded=Count("id", filter=Q(state=State.SUCCEEDED)), dead=Count("id", filter=Q(state=State.DEAD)),
            rejected=Count("id", filter=Q(state=State.DEAD, rejected=True)))
        failures = {
            (row["queue"], row["day"]): row["n"]
            for row in JobFailure.objects.filter(job_id__in=ids)
            .annotate(day=TruncDate("job__finished_at")).values("queue", "day").annotate(n=Count("id"))
        }
        for row in days:
            stats, _ = QueueDailyStats.objects.select_for_update().get_or_create(queue=row["queue"], day=row["day"])
            QueueDailyStats.objects.filter(pk=stats.pk).update(
                succeeded=F("succeeded") + row["succeeded"], dead=F("dead") + row["dead"],
                rejected=F("rejected") + row["rejected"],
                failed_attempts=F("failed_attempts") + failures.get((row["queue"], row["day"]), 0),
            )
        batch.delete()  # their JobFailure rows go with them
        # Celery's results of these jobs (the task id is the job id): kept exactly as long as the job.
        TaskResult.objects.filter(task_id__in=[str(job_id) for job_id in ids]).delete()
    return len(ids)


def _delete_in_batches(queryset: QuerySet, batch_size: int) -> int:
    """Delete the rows of `queryset` a batch at a time (short transactions); returns how many."""
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(queryset.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])
            if pks:
                queryset.model.objects.filter(pk__in=pks).delete()
        deleted += len(pks)
        if len(pks) < batch_size:
            return deleted


def _orphan_task_results(cutoff) -> QuerySet:
    """Old results of tasks that have no ledger job (not a ledger task, or a job pruned before results
    were kept): nothing else would ever remove them."""
    job_ids = Job.objects.annotate(id_text=Cast("id", CharField())).values("id_text")
    return TaskResult.objects.filter(date_done__lt=cutoff).exclude(task_id__in=job_ids)


def _prunable_dead_letters(cutoff) -> QuerySet:
    # resolved_at is set by every way of resolving; failed_at stands in for a row resolved without it.
    return DeadLetter.objects.filter(resolved=True).alias(done_at=Coalesce("resolved_at", "failed_at")) \
        .filter(done_at__lt=cutoff)


def _prunable_submissions(cutoff) -> QuerySet:
    """Old submissions that nothing may still process: a lead job that is not finished, or an
    unresolved dead-letter entry (a requeue processes its submission again), keeps its submission."""
    open_jobs = Job.objects.exclude(state__in=Job.FINISHED_STATES)
    unresolved = DeadLetter.objects.filter(resolved=False)
    # A submission is tied to its job both ways (submission.job_id, job.payload.submission_id): honour both.
    needed_by_id = open_jobs.values("id")
    needed_by_payload = open_jobs.annotate(sid=KT("payload__submission_id")).filter(sid__isnull=False).values("sid")
    dead_job_ids = unresolved.filter(job_id__isnull=False).values("job_id")
    dead_payload = unresolved.annotate(sid=KT("job_data__submission_id")).filter(sid__isnull=False).values("sid")
    return (
        LeadSubmission.objects.filter(received_at__lt=cutoff)
        .annotate(id_text=Cast("id", CharField()), job_text=Cast("job_id", CharField()))
        .exclude(job_id__in=needed_by_id)
        .exclude(id_text__in=needed_by_payload)
        # (a NULL job_id must not reach NOT IN, which would then be unknown and hide the row)
        .exclude(Q(job_id__isnull=False) & Q(job_text__in=dead_job_ids))
        .exclude(id_text__in=dead_payload)
    )


def prune_ledger(*, retention_days: int | None = None, dead_letter_days: int | None = None,
                 submission_days: int | None = None, batch_size: int = 5000) -> Pruned:
    days = settings.LEDGER_RETENTION_DAYS if retention_days is None else retention_days
    dead_letter_days = settings.DLQ_RESOLVED_RETENTION_DAYS if dead_letter_days is None else dead_letter_days
    submission_days = settings.SUBMISSION_RETENTION_DAYS if submission_days is None else submission_days
    cutoff = Now() - timedelta(days=days)
    pruned = Pruned()
    while True:  # short transactions: workers keep finishing jobs meanwhile
        moved = prune_batch(cutoff, batch_size)
        pruned.jobs += moved
        if moved < batch_size:
            break
    pruned.heartbeats, _ = WorkerHeartbeat.objects.filter(beat_at__lt=cutoff).delete()
    pruned.task_results = _delete_in_batches(_orphan_task_results(cutoff), batch_size)
    pruned.dead_letters = _delete_in_batches(_prunable_dead_letters(Now() - timedelta(days=dead_letter_days)),
                                             batch_size)
    pruned.submissions = _delete_in_batches(_prunable_submissions(Now() - timedelta(days=submission_days)),
                                            batch_size)
    pruned.idempotency_keys = idempotency.prune_expired()  # else a quiet webhook keeps them
    if any(vars(pruned).values()):
        logger.info("pruned: %d finished job(s) older than %d day(s) moved to daily statistics (with their "
                    "Celery results), %d old worker heartbeat(s), %d Celery result(s) of no ledger job, "
                    "%d dead-letter entr(ies) resolved over %d day(s) ago, %d lead submission(s) older than "
                    "%d day(s), %d expired webhook idempotency key(s)", pruned.jobs, days, pruned.heartbeats,
                    pruned.task_results, pruned.dead_letters, dead_letter_days, pruned.submissions,
                    submission_days, pruned.idempotency_keys)
    return pruned
