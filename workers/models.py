"""The job ledger: PostgreSQL's record of every job, the truth Redis and Celery only carry out."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from workers.results import StoredTaskResult  # noqa: F401 - a model of this app too: Django finds it here


class Job(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "pending"  # waiting for the dispatcher
        RETRY = "retry", "retry"  # failed, waiting for next_attempt_at
        DISPATCHED = "dispatched", "dispatched"  # published to Redis, not yet claimed
        RUNNING = "running", "running"  # claimed by a worker holding a lease
        SUCCEEDED = "succeeded", "succeeded"
        DEAD = "dead", "dead"  # in the dead-letter queue
        # Stopped by a person before it started (ledger.cancel_not_started): no attempt will ever claim it.
        CANCELLED = "cancelled", "cancelled"

    WAITING_STATES = (State.PENDING, State.RETRY)
    IN_FLIGHT_STATES = (State.DISPATCHED, State.RUNNING)
    FINISHED_STATES = (State.SUCCEEDED, State.DEAD, State.CANCELLED)
    NOT_STARTED_STATES = (State.PENDING, State.RETRY, State.DISPATCHED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    queue = models.CharField(max_length=40, choices=[(name, name) for name in settings.QUEUE_NAMES])
    task = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    next_attempt_at = models.DateTimeField()
    # Bumped at every publish and carried in the message: only the newest message may claim the job.
    dispatch_token = models.PositiveIntegerField(default=0)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # The pid of the worker's main process (the one supervisord started and reports in its events; a
    # prefork child's own pid differs) that claimed the current attempt: the node name alone is shared
    # by every life of that worker, so only the pid tells a dead one's jobs from its successor's.
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # When the rate limiter gave the current attempt its start slot, by the limiter's own clock (Redis
    # TIME, the one clock every host shares for it): the exact record of each start the limit allowed,
    # which outlives the limiter's log in Redis. Empty until the attempt has its slot (and for a queue
    # without a limit).
    slot_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Dead because its own input was invalid (workers.errors.InvalidData): rejected, not a failure.
    rejected = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name, verbose_name_plural = "job", "jobs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["queue", "next_attempt_at"],
                condition=Q(state__in=["pending", "retry"]),
                name="job_due_idx",
            ),
            models.Index(fields=["lease_expires_at"], condition=Q(state="running"), name="job_lease_idx"),
            models.Index(fields=["dispatched_at"], condition=Q(state="dispatched"), name="job_dispatched_idx"),
            models.Index(fields=["queue", "state"], name="job_queue_state_idx"),
            # The health rules' recent window: finishes and starts per queue since a moment.
            models.Index(fields=["queue", "finished_at"], condition=Q(finished_at__isnull=False),
                         name="job_finished_idx"),
            models.Index(fields=["queue", "started_at"], condition=Q(started_at__isnull=False),
                         name="job_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}:{self.task} {self.id} ({self.state})"


class JobFailure(models.Model):
    """One failed attempt of a job: the history behind its retries, and the `errors` the health
    rules count (a job that failed twice and then succeeded leaves two rows here)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="failures")
    queue = models.CharField(max_length=40)
    attempt = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField()
    # When the failed attempt started (the job's started_at is overwritten by the next attempt): with the
    # succeeded jobs' started_at, every start of a queue is in the ledger (make chaos counts them).
    started_at = models.DateTimeField(null=True, blank=True)
    slot_at = models.DateTimeField(null=True, blank=True)  # its rate-limit slot (Job.slot_at); empty: it never got one
    failed_at = models.DateTimeField(db_default=Now())
    rejected = models.BooleanField(default=False, db_default=False)  # the input was invalid: not an error

    class Meta:
        verbose_name, verbose_name_plural = "job failure", "job failures"
        ordering = ["-failed_at"]
        indexes = [models.Index(fields=["queue", "failed_at"], name="jobfailure_queue_time_idx")]

    def __str__(self) -> str:
        return f"{self.queue} job {self.job_id} attempt {self.attempt}: {self.error[:80]}"


class WorkerHeartbeat(models.Model):
    """The last report of one Celery worker (one per queue and pool). A worker is live while
    expires_at is in the future: one missed beat plus a grace period and it counts as gone.
    The dispatcher leader writes a row too, in pool DISPATCHER_POOL with no queue."""

    DISPATCHER_POOL = "dispatcher"

    name = models.CharField(max_length=200, unique=True)  # Celery node name: lead-processing@primary.host
    pool = models.CharField(max_length=40)
    queue = models.CharField(max_length=40)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)  # a warm shutdown says goodbye
    jobs_done = models.PositiveBigIntegerField(default=0)  # since this worker process started
    jobs_failed = models.PositiveBigIntegerField(default=0)  # failed attempts, rejected input excepted
    # Jobs dead-lettered for their own input (InvalidData). A database default too: during a rolling
    # upgrade a worker of the release before writes its rows without this column.
    jobs_rejected = models.PositiveBigIntegerField(default=0, db_default=0)
    last_job_at = models.DateTimeField(null=True, blank=True)
    memory_bytes = models.PositiveBigIntegerField(default=0)  # main process and pool children (RSS)
    # False while the process lives but its Celery consumer does not (broker connection lost, consumer
    # restarting or stopped): it takes no job, so it is not a live consumer.
    consuming = models.BooleanField(default=True, db_default=True)

    class Meta:
        verbose_name, verbose_name_plural = "worker heartbeat", "worker heartbeats"
        ordering = ["queue", "pool", "name"]
        indexes = [models.Index(fields=["queue", "expires_at"], name="heartbeat_queue_expiry_idx")]

    def __str__(self) -> str:
        return self.name


class QueuePause(models.Model):
    """A queue paused on purpose (manage.py pause_queue): the dispatcher publishes none of its jobs,
    and the health rules show it as paused instead of unhealthy."""

    queue = models.CharField(max_length=40, unique=True, choices=[(name, name) for name in settings.QUEUE_NAMES])
    reason = models.TextField()
    paused_by = models.CharField(max_length=150, blank=True)
    paused_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name, verbose_name_plural = "queue pause", "queue pauses"

    def __str__(self) -> str:
        return f"{self.queue} paused: {self.reason}"


class QueueDailyStats(models.Model):
    """Finished jobs per queue and day, kept when the ledger's old rows are pruned, so lifetime
    counts survive the pruning."""

    queue = models.CharField(max_length=40)
    day = models.DateField()
    succeeded = models.PositiveBigIntegerField(default=0)
    dead = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0, db_default=0)  # of the dead: rejected for their input
    failed_attempts = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name, verbose_name_plural = "queue daily stats", "queue daily stats"  # not "statss"
        ordering = ["-day", "queue"]
        constraints = [models.UniqueConstraint(fields=["queue", "day"], name="queue_daily_stats_unique")]

    def __str__(self) -> str:
        return f"{self.queue} {self.day}: {self.succeeded} succeeded, {self.dead} dead"


class JobCount(models.Model):
    """Jobs per queue, state and rejection, kept by database triggers on the ledger (migration
    0003_job_counts) so the health report, the dashboard and /metrics read O(queues) rows instead of
    counting the ledger. Each ledger statement appends its changes as delta rows (no row is updated,
    so concurrent jobs never wait on each other here); the figure is the sum per key, and
    workers.retention.fold_job_counts() (a leader duty) folds the deltas back into one row per key."""

    queue = models.CharField(max_length=40)
    state = models.CharField(max_length=12)
    rejected = models.BooleanField(default=False)
    n = models.BigIntegerField()

    class Meta:
        verbose_name, verbose_name_plural = "job count", "job counts"

    def __str__(self) -> str:
        return f"{self.queue} {self.state}{' rejected' if self.rejected else ''}: {self.n:+d}"


class JobMinute(models.Model):
    """Attempts per queue and minute (UTC, truncated): started, succeeded, failed (retry, dead or lost,
    input rejections apart), kept by a database trigger on the ledger (migration 0010_job_minutes) for
    the dashboard's charts, so they never scan the ledger. Like JobCount, each ledger statement appends
    delta rows (folded=False) and workers.job_minutes.fold_job_minutes (a leader duty) folds a minute's
    rows into one; pruned after CHART_RETENTION_DAYS."""

    queue = models.CharField(max_length=40)
    minute = models.DateTimeField()
    started = models.BigIntegerField(default=0)
    succeeded = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    folded = models.BooleanField(default=False)

    class Meta:
        verbose_name, verbose_name_plural = "job minute", "job minutes"
        indexes = [
            models.Index(fields=["minute"], name="jobminute_minute_idx"),
            models.Index(fields=["queue", "minute"], condition=Q(folded=False), name="jobminute_unfolded_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.minute:%Y-%m-%d %H:%M}: {self.started} started"


class JobWaitMinute(models.Model):
    """First attempts per queue, minute of their start and wait bucket (workers.job_minutes.WAIT_BUCKETS:
    bucket i counts waits from enqueue to start of at least the i-th bound, below the next): a fixed
    histogram, so a window's p50/p95 is the sum of its minutes' buckets. Kept like JobMinute."""

    queue = models.CharField(max_length=40)
    minute = models.DateTimeField()
    bucket = models.SmallIntegerField()
    n = models.BigIntegerField()
    folded = models.BooleanField(default=False)

    class Meta:
        verbose_name, verbose_name_plural = "job wait minute", "job wait minutes"
        indexes = [
            models.Index(fields=["minute"], name="jobwaitminute_minute_idx"),
            models.Index(fields=["queue", "minute"], condition=Q(folded=False), name="jobwaitminute_unfolded_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.minute:%Y-%m-%d %H:%M} bucket {self.bucket}: {self.n}"
