"""The dead-letter queue table, column for column as in the original system's SQL."""
from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class DeadLetter(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    queue_name = models.CharField(max_length=100)
    job_id = models.CharField(max_length=255, null=True, blank=True)
    job_data = models.JSONField()
    error_message = models.TextField(null=True, blank=True)
    error_stack = models.TextField(null=True, blank=True)
    attempts_made = models.IntegerField(null=True, blank=True)
    failed_at = models.DateTimeField(db_default=Now())
    resolved = models.BooleanField(default=False, db_default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=100, null=True, blank=True)
    notes = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "dead_letter_queue"
        verbose_name = "dead-letter entry"
        verbose_name_plural = "dead-letter entries"  # "4 dead-letter entries", "Delete selected dead-letter entries"
        ordering = ["-failed_at"]
        indexes = [
            models.Index(fields=["queue_name"], name="idx_dlq_queue_name"),
            models.Index(fields=["-failed_at"], name="idx_dlq_failed_at"),
            models.Index(fields=["resolved"], condition=Q(resolved=False), name="idx_dlq_resolved"),
            models.Index(fields=["queue_name", "resolved"], name="idx_dlq_queue_resolved"),
            # A job's entry: the job's story page and the operator's search (monitoring).
            models.Index(fields=["job_id"], name="idx_dlq_job_id"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} job {self.job_id}: {self.error_preview(80)}"

    def error_preview(self, limit: int) -> str:
        """The start of the error, for lists; the entry's page shows all of it."""
        message = self.error_message or ""
        return message if len(message) <= limit else message[: limit - 1] + "…"


class DeadLetterCorrection(models.Model):
    """A person's correction of a dead job's input before requeuing it (dlq.corrections): the input as
    it was and as corrected, both kept, with who and when. The entry's history says the same in words."""

    entry = models.ForeignKey(DeadLetter, on_delete=models.CASCADE, related_name="corrections")
    original = models.JSONField()
    corrected = models.JSONField()
    stored_in = models.CharField(max_length=200)  # where the job reads its input: "lead submission 12"
    corrected_by = models.CharField(max_length=150)
    corrected_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name, verbose_name_plural = "dead-letter correction", "dead-letter corrections"
        ordering = ["-corrected_at"]

    def __str__(self) -> str:
        return f"{self.stored_in} corrected by {self.corrected_by}"
