"""The job ledger: PostgreSQL's record of every job, the truth Redis and Celery only carry out."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Job(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "pending"  # waiting for the dispatcher
        RETRY = "retry", "retry"  # failed, waiting for next_attempt_at
        DISPATCHED = "dispatched", "dispatched"  # published to Redis, not yet claimed
        RUNNING = "running", "running"  # claimed by a worker holding a lease
        SUCCEEDED = "succeeded", "succeeded"
        DEAD = "dead", "dead"  # in the dead-letter queue

    WAITING_STATES = (State.PENDING, State.RETRY)
    IN_FLIGHT_STATES = (State.DISPATCHED, State.RUNNING)
    FINISHED_STATES = (State.SUCCEEDED, State.DEAD)

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
    last_error = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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
        ]

    def __str__(self) -> str:
        return f"{self.queue}:{self.task} {self.id} ({self.state})"
