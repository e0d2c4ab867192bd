"""Pruning the ledger: finished jobs older than LEDGER_RETENTION_DAYS leave it, and their counts move
to QueueDailyStats in the same transaction, so lifetime figures neither drop nor double.

A dead job whose dead-letter entry is still unresolved stays: requeueing it needs its ledger row.
The dispatcher's leader runs this once an hour; `manage.py prune_ledger` runs it by hand.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, Count, F, Q
from django.db.models.functions import Cast, Now, TruncDate

from dlq.models import DeadLetter
from workers.models import Job, JobFailure, QueueDailyStats, WorkerHeartbeat

logger = logging.getLogger(__name__)
State = Job.State


@dataclass
class Pruned:
    jobs: int = 0
    heartbeats: int = 0


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
    return len(ids)


def prune_ledger(*, retention_days: int | None = None, batch_size: int = 5000) -> Pruned:
    days = settings.LEDGER_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = Now() - timedelta(days=days)
    pruned = Pruned()
    while True:  # short transactions: workers keep finishing jobs meanwhile
        moved = prune_batch(cutoff, batch_size)
        pruned.jobs += moved
        if moved < batch_size:
            break
    pruned.heartbeats, _ = WorkerHeartbeat.objects.filter(beat_at__lt=cutoff).delete()
    if pruned.jobs or pruned.heartbeats:
        logger.info("ledger pruned: %d finished job(s) older than %d day(s) moved to daily statistics, "
                    "%d old worker heartbeat(s) removed", pruned.jobs, days, pruned.heartbeats)
    return pruned
