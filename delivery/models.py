"""A delivery: one run per won lead, its ordered steps, and the state of each, persisted after every step."""
from __future__ import annotations

from django.db import models
from django.db.models import Q


class DeliveryRun(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "running"  # a step is queued, running or waiting for its retry
        FAILED = "failed", "failed (dead-lettered at a step)"
        DELIVERED = "delivered", "delivered"

    # One run per lead: the unique index, not a check, is what makes two concurrent starts create one.
    lead = models.OneToOneField("leads.Lead", on_delete=models.CASCADE, related_name="delivery_run")
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    # The position of the step running, or failed, or next to run (the last one once delivered).
    current_step = models.PositiveSmallIntegerField(default=1)
    started_by = models.CharField(max_length=150, blank=True)
    error = models.TextField(blank=True)  # the dead-lettered step's error, with the step named
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "delivery run", "delivery runs"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"], condition=Q(state="running"), name="deliveryrun_running_idx")]

    def __str__(self) -> str:
        return f"delivery {self.pk} of lead {self.lead_id} ({self.state}, step {self.current_step})"


class DeliveryStep(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "pending"  # not reached yet (or requeued from the dead-letter queue)
        RUNNING = "running", "running"  # its job has started at least once and not finished
        DONE = "done", "done"  # never runs again
        FAILED = "failed", "failed (dead-lettered)"

    run = models.ForeignKey(DeliveryRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()  # 1, 2, 3 ... in the order they run
    name = models.CharField(max_length=60)  # a key of delivery.steps
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)  # every start, across requeues
    # Times it waited for something outside the run (the lead's site, still to be made): a wait is
    # not an attempt, and each one is longer than the last (delivery.steps.site_wait_seconds).
    waits = models.PositiveIntegerField(default=0, db_default=0)
    waiting_for = models.CharField(max_length=300, blank=True, default="", db_default="")  # while it waits
    job_id = models.UUIDField(null=True, blank=True)  # plain id: the ledger is pruned, runs are not
    result = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # its first attempt
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "delivery step", "delivery steps"
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="deliverystep_run_position_uniq"),
            models.UniqueConstraint(fields=["run", "name"], name="deliverystep_run_name_uniq"),
        ]
        # A job's step: the job's story page and the operator's search (monitoring).
        indexes = [models.Index(fields=["job_id"], name="deliverystep_job_idx")]

    def __str__(self) -> str:
        return f"step {self.position} ({self.name}, {self.state})"
