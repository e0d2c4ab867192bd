"""Pruning: finished jobs older than LEDGER_RETENTION_DAYS leave the ledger, and their counts move to
QueueDailyStats in the same transaction, so lifetime figures neither drop nor double. Celery's result
of each job (django-celery-results' TaskResult, under the job's id) goes with its job.

The runtime knows only its own tables (jobs, heartbeats, Celery's results). What else must stay or go
is the apps' to say (workers.registry): a keeper names finished jobs that must stay (dlq: a dead job
whose entry is unresolved, since requeueing it needs its row); a pruner removes a slice of its own
table past its retention (dlq's resolved entries, leads' raw submissions and webhook keys).

The leader does it as a duty (prune_slice, hourly) in slices bounded by PRUNE_SLICE_SECONDS, each
statement bounded by the duty's statement_timeout: it never holds the dispatch round, and never scans
the whole ledger (jobs by queue in finished_at order on their index, results by a cursor).
`manage.py prune_ledger` runs the slices until nothing is left.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Count, F, Q, QuerySet
from django.db.models.functions import Cast, Now, TruncDate
from django_celery_results.models import TaskResult

from workers import registry
from workers.models import Job, JobCount, JobFailure, QueueDailyStats, WorkerHeartbeat

logger = logging.getLogger(__name__)
State = Job.State

PRUNE_INTERVAL_SECONDS = 3600.0
# One duty turn's work: then the other duties get their turn, and pruning goes on right after.
PRUNE_SLICE_SECONDS = 2.0
PRUNE_BATCH = 1000


@dataclass
class Pruned:
    jobs: int = 0
    heartbeats: int = 0
    task_results: int = 0  # results of no ledger job; a pruned job's result goes with it, uncounted
    by_app: dict[str, int] = field(default_factory=dict)  # what each registered pruner removed

    def __iadd__(self, other: Pruned) -> Pruned:
        self.jobs += other.jobs
        self.heartbeats += other.heartbeats
        self.task_results += other.task_results
        for name, n in other.by_app.items():
            self.by_app[name] = self.by_app.get(name, 0) + n
        return self

    def total(self) -> int:
        return self.jobs + self.heartbeats + self.task_results + sum(self.by_app.values())


def finished_unkept(jobs: QuerySet) -> QuerySet:
    """The finished jobs of `jobs` that no app keeps (workers.registry.keep_jobs): what may leave the
    ledger, by retention or by a person in the admin."""
    jobs = jobs.filter(state__in=Job.FINISHED_STATES)
    keepers = registry.keepers()
    if keepers:  # keepers name job ids as text (DeadLetter.job_id is the contract's text column)
        jobs = jobs.annotate(id_text=Cast("id", CharField()))
    for keeper in keepers:
        jobs = jobs.exclude(id_text__in=keeper.job_ids())
    return jobs


def _prunable(queue: str, cutoff):
    return finished_unkept(Job.objects.filter(queue=queue, finished_at__lt=cutoff).order_by("finished_at"))


def prune_batch(queue: str, cutoff, limit: int) -> int:
    """Move up to `limit` of the queue's oldest finished jobs past `cutoff` into the daily statistics;
    returns how many."""
    with transaction.atomic():
        ids = list(_prunable(queue, cutoff).select_for_update(skip_locked=True, of=("self",))
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


class ResultCursor:
    """Walks Celery's old results by primary key, a batch per call, and starts again at the end:
    finding the results of no ledger job never anti-joins the whole ledger."""

    def __init__(self) -> None:
        self.after = 0

    def prune(self, cutoff, limit: int) -> tuple[int, bool]:
        """(deleted, more): one batch of results older than `cutoff` whose task is no ledger job."""
        rows = list(TaskResult.objects.filter(pk__gt=self.after, date_done__lt=cutoff).order_by("pk")
                    .values_list("pk", "task_id")[:limit])
        if len(rows) < limit:
            self.after = 0  # the walk is done: the next one starts over
        else:
            self.after = rows[-1][0]
        ids = {}
        for pk, task_id in rows:
            try:
                ids[pk] = uuid.UUID(task_id)
            except ValueError:
                ids[pk] = None  # not a ledger job's id (a task outside the ledger)
        jobs = set(Job.objects.filter(id__in=[i for i in ids.values() if i]).values_list("id", flat=True))
        orphans = [pk for pk, job_id in ids.items() if job_id not in jobs]
        deleted, _ = TaskResult.objects.filter(pk__in=orphans).delete() if orphans else (0, {})
        return deleted, len(rows) == limit


RESULTS = ResultCursor()


def delete_slice(queryset: QuerySet, limit: int) -> int:
    """Delete at most `limit` rows of `queryset` in one short transaction, skipping rows others hold:
    the building block of the apps' pruners (workers.registry.prune). Returns how many went."""
    with transaction.atomic():
        pks = list(queryset.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        if pks:
            queryset.model.objects.filter(pk__in=pks).delete()
    return len(pks)


def _cutoff(days: int):
    return Now() - timedelta(days=days)


def prune_slice(*, retention_days: int | None = None, seconds: float = PRUNE_SLICE_SECONDS,
                batch_size: int = PRUNE_BATCH, results: ResultCursor = RESULTS) -> tuple[Pruned, bool]:
    """Prune batch after batch until nothing is left or `seconds` have passed: (what went, more left)."""
    days = settings.LEDGER_RETENTION_DAYS if retention_days is None else retention_days
    deadline = time.monotonic() + seconds
    pruned = Pruned()
    steps = [*((f"jobs:{queue}", lambda q=queue: _jobs(pruned, q, days, batch_size)) for queue in settings.QUEUE_NAMES),
             ("heartbeats", lambda: _heartbeats(pruned, days, batch_size)),
             ("results", lambda: _results(pruned, results, days, batch_size)),
             *((p.name, lambda p=p: _app(pruned, p, batch_size)) for p in registry.pruners())]
    for _, step in steps:
        while step():  # a full batch: there may be more
            if time.monotonic() >= deadline:
                _log(pruned, days)
                return pruned, True
    _log(pruned, days)
    return pruned, False


def _jobs(pruned: Pruned, queue: str, days: int, batch_size: int) -> bool:
    moved = prune_batch(queue, _cutoff(days), batch_size)
    pruned.jobs += moved
    return moved == batch_size


def _heartbeats(pruned: Pruned, days: int, batch_size: int) -> bool:
    with transaction.atomic():
        pks = list(WorkerHeartbeat.objects.filter(beat_at__lt=_cutoff(days)).values_list("pk", flat=True)[:batch_size])
        deleted, _ = WorkerHeartbeat.objects.filter(pk__in=pks).delete() if pks else (0, {})
    pruned.heartbeats += deleted
    return len(pks) == batch_size


def _results(pruned: Pruned, results: ResultCursor, days: int, batch_size: int) -> bool:
    deleted, more = results.prune(_cutoff(days), batch_size)
    pruned.task_results += deleted
    return more


def _app(pruned: Pruned, pruner: registry.Pruner, batch_size: int) -> bool:
    deleted = pruner.prune(batch_size)
    pruned.by_app[pruner.name] = pruned.by_app.get(pruner.name, 0) + deleted
    return deleted == batch_size


def _log(pruned: Pruned, days: int) -> None:
    if pruned.total():
        apps = "".join(f", {n} {name}" for name, n in pruned.by_app.items() if n)
        logger.info("pruned: %d finished job(s) older than %d day(s) moved to daily statistics (with their "
                    "Celery results), %d old worker heartbeat(s), %d Celery result(s) of no ledger job%s",
                    pruned.jobs, days, pruned.heartbeats, pruned.task_results, apps)


def fold_job_counts() -> int:
    """Fold JobCount's delta rows (the triggers add one per change) into one row per key; returns the
    rows left. PostgreSQL deletes and re-inserts in one statement, so a delta committed meanwhile is
    either folded in or left as it is, never lost. The leader does it every HEARTBEAT_INTERVAL_SECONDS."""
    table = JobCount._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"""
            WITH gone AS (DELETE FROM {table} RETURNING queue, state, rejected, n)
            INSERT INTO {table} (queue, state, rejected, n)
            SELECT queue, state, rejected, sum(n) FROM gone GROUP BY 1, 2, 3 HAVING sum(n) <> 0""")
        return cursor.rowcount


def prune_duty() -> bool:
    """The leader's pruning duty: one slice; True when there is more (workers.duties)."""
    return prune_slice()[1]


def prune_ledger(*, retention_days: int | None = None, batch_size: int = PRUNE_BATCH) -> Pruned:
    """Everything past its retention, slice after slice (manage.py prune_ledger)."""
    total = Pruned()
    results = ResultCursor()
    while True:
        pruned, more = prune_slice(retention_days=retention_days, batch_size=batch_size, results=results)
        total += pruned
        if not more:
            return total
