from __future__ import annotations

from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Lower


class LeadSubmission(models.Model):
    """One lead exactly as a source sent it, kept whatever becomes of it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        QUALIFIED = "qualified", "qualified"
        DISQUALIFIED = "disqualified", "disqualified"
        DUPLICATE = "duplicate", "duplicate (merged)"
        FAILED = "failed", "failed (dead-lettered)"
        CANCELLED = "cancelled", "cancelled (its job, before it ran)"

    source = models.CharField(max_length=50, default="clay-webhook")
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    lead = models.ForeignKey("Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions")
    # Plain id, not a foreign key: the ledger is pruned, the submission is not.
    job_id = models.UUIDField(null=True, blank=True, db_index=True)
    batch_id = models.UUIDField(null=True, blank=True, db_index=True)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name, verbose_name_plural = "lead submission", "lead submissions"
        ordering = ["-received_at"]
        indexes = [
            # The operator's search (monitoring.search): a refused lead has a submission and no Lead row,
            # so its address is found in the payload it came with.
            models.Index(Lower(KT("payload__email")), name="submission_email_idx"),
        ]

    def __str__(self) -> str:
        return f"submission {self.pk} ({self.status})"


class Lead(models.Model):
    """A person, once: deduplicated on the normalised email address."""

    class Status(models.TextChoices):
        QUALIFIED = "qualified", "qualified"
        DISQUALIFIED = "disqualified", "disqualified"

    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    domain = models.CharField(max_length=253, blank=True)
    website = models.URLField(max_length=500, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    linkedin_url = models.URLField(max_length=500, blank=True)
    industry = models.CharField(max_length=200, blank=True)
    employee_count = models.PositiveIntegerField(null=True, blank=True)
    country = models.CharField(max_length=100, blank=True)
    score = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices)
    times_seen = models.PositiveIntegerField(default=1)
    # The sale, apart from `status` (which scoring recomputes on every merge): set by "mark won",
    # and by the delivery run's last step (delivery app).
    won_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name, verbose_name_plural = "lead", "leads"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-score"], name="lead_status_score_idx"),
            # The operator's search (monitoring.search): `domain` is stored normalised (lower case); a
            # company is matched whatever its case, on an index of its lower case.
            models.Index(fields=["domain"], name="lead_domain_idx"),
            models.Index(Lower("company"), name="lead_company_lower_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.status}, {self.score})"


class WebhookIdempotencyKey(models.Model):
    """The first answer to a webhook request sent with an Idempotency-Key header, replayed to a
    retry with the same key instead of storing the batch again (see leads.idempotency).

    The unique key is what makes two concurrent requests with the same key store once: the second
    insert waits for the first transaction and then finds the key taken. The key is kept as its SHA-256,
    never by value: a sender may put anything in the header (a token, a customer's id), and the table is
    read by people; a retry's key hashes to the same row.
    """

    key_sha256 = models.CharField(max_length=64, unique=True)  # hex SHA-256 of the Idempotency-Key header
    body_sha256 = models.CharField(max_length=64)  # a retry must send the same body
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name, verbose_name_plural = "webhook idempotency key", "webhook idempotency keys"

    def __str__(self) -> str:
        return f"idempotency key {self.key_sha256[:12]}... ({self.status_code})"
