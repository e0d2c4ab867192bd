from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

_PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_public_id() -> str:
    """site_ + 12 random characters (62 bits): the public URL is unlisted, so it must not be guessable."""
    return "site_" + "".join(secrets.choice(_PUBLIC_ID_ALPHABET) for _ in range(12))


class Site(models.Model):
    """A generated site and what the requests that made it cost (their sum, kept for the site's page in
    the admin). The books are AiRequest: every paid request, the ones that made no site included."""

    class Status(models.TextChoices):
        PUBLISHED = "published", "published"  # served at /sites/<public_id>/
        WITHDRAWN = "withdrawn", "withdrawn"  # taken down by a person: 404

    public_id = models.CharField(max_length=40, unique=True, default=new_public_id, editable=False)
    # SET_NULL: a deleted lead takes its site offline with it, but the money spent stays on record.
    lead = models.ForeignKey("leads.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="sites")
    # Plain id, not a foreign key: the ledger is pruned, the site is not. Unique: a second record of
    # the same job (a late or redelivered attempt) is refused by the database, not by luck.
    job_id = models.UUIDField(unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PUBLISHED)
    design = models.CharField(max_length=20)
    content = models.JSONField()  # the validated structured answer the html was rendered from
    html = models.TextField()
    model = models.CharField(max_length=100)
    mock = models.BooleanField(default=False)  # MOCK_MODE: no API call was made
    api_requests = models.PositiveSmallIntegerField(default=1)  # its AiRequests: 2 when a malformed answer was asked again
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10)  # exact: prices per million x tokens
    duration_ms = models.PositiveIntegerField(default=0)  # the API call(s) alone
    created_at = models.DateTimeField(db_default=Now(), editable=False)  # the database's clock: one day for every host
    cta_clicks = models.PositiveIntegerField(default=0)  # visitors who followed its call to action (/sites/<id>/book)

    class Meta:
        verbose_name, verbose_name_plural = "site", "sites"
        ordering = ["-created_at"]
        constraints = [
            # One site per lead: a duplicate that merged into a qualified lead never gets a second one.
            models.UniqueConstraint(fields=["lead"], condition=Q(lead__isnull=False), name="site_one_per_lead"),
        ]
        indexes = [models.Index(fields=["created_at", "model"], name="site_spend_idx")]

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def get_absolute_url(self) -> str:
        return f"/sites/{self.public_id}/"

    @property
    def public_url(self) -> str:
        """The link emails carry: the public base URL (behind the proxy) and the page's path."""
        return settings.PUBLIC_BASE_URL + self.get_absolute_url()

    def __str__(self) -> str:
        return self.public_id


class AiRequest(models.Model):
    """One answered request to Claude: paid the moment its answer arrived, whatever became of the job.

    Written right after the answer, in a short transaction of its own and not fenced (a late attempt's
    answer was paid for all the same), before the answer is validated into a site. Every total, the
    budget, the admin, cost_report, the dashboard and /metrics read this table. A valid answer whose
    site was not recorded (the record failed, the worker died, the attempt was refused as late) stays
    here with site empty, and the job's next attempt uses it instead of paying for another.
    """

    class Outcome(models.TextChoices):
        VALID = "valid", "valid"  # a site's content: it made a site, or the next attempt will use it
        MALFORMED = "malformed", "malformed"  # failed validation (or no tool call): paid, no site
        REFUSED = "refused", "refused"  # the model declined (stop_reason "refusal"): paid, no site

    # Plain ids, not foreign keys: the ledger is pruned and leads may be deleted; the money stays on record.
    job_id = models.UUIDField(null=True, blank=True)
    fence = models.PositiveIntegerField(default=0)  # the attempt's dispatch token (which attempt paid)
    lead_id = models.BigIntegerField(null=True, blank=True)
    # Set in the transaction that records the site; PROTECT: a site is withdrawn, never deleted.
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="ai_requests")
    model = models.CharField(max_length=100)
    request_id = models.CharField(max_length=200, blank=True)  # the API's request-id header: what its bill names
    message_id = models.CharField(max_length=200, blank=True)
    mock = models.BooleanField(default=False)  # MOCK_MODE: made up, never spend
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    detail = models.CharField(max_length=500, blank=True)  # why a malformed answer was refused
    answer = models.JSONField(null=True, blank=True)  # a valid answer's tool input: what a later attempt reuses
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10)  # exact: prices per million x tokens
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now(), editable=False)  # the database's clock: one day everywhere

    class Meta:
        verbose_name, verbose_name_plural = "paid AI request", "paid AI requests"
        ordering = ["-created_at"]
        constraints = [
            # The API names every answer once: a record retried after a lost connection cannot count it twice.
            models.UniqueConstraint(fields=["request_id"], condition=~Q(request_id=""), name="airequest_request_once"),
        ]
        indexes = [
            models.Index(fields=["created_at", "model"], name="airequest_spend_idx"),
            # What prepare() looks for: a valid answer of this lead that made no site yet.
            models.Index(fields=["lead_id"], condition=Q(site__isnull=True, outcome="valid"),
                         name="airequest_unused_idx"),
        ]

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __str__(self) -> str:
        return f"{self.request_id or self.pk} ({self.outcome})"


class SpendDay(models.Model):
    """The books' running totals: one row per UTC day, model, MOCK_MODE and outcome, kept by database
    triggers on AiRequest (migration 0003_spend_days) in the transaction of each write, so the cost
    lines, the budget, the admin and cost_report read a few rows instead of summing every paid request.

    `sites` counts each site once, on the row of the valid answer that made it (a site has exactly one):
    a site whose malformed first answer came the day before counts on its valid answer's day."""

    day = models.DateField()
    model = models.CharField(max_length=100)
    mock = models.BooleanField()
    outcome = models.CharField(max_length=12, choices=AiRequest.Outcome.choices)
    requests = models.BigIntegerField(default=0)
    sites = models.BigIntegerField(default=0)
    no_site_requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=28, decimal_places=10, default=0)
    no_site_cost_usd = models.DecimalField(max_digits=28, decimal_places=10, default=0)

    class Meta:
        verbose_name, verbose_name_plural = "day's spend", "days' spend"
        ordering = ["-day", "model"]
        constraints = [models.UniqueConstraint(fields=["day", "model", "mock", "outcome"], name="spend_day_once")]

    def __str__(self) -> str:
        return f"{self.day} {self.model} {self.outcome}{' (mock)' if self.mock else ''}: {self.cost_usd}"


class SpendHour(models.Model):
    """Paid requests and their cost per UTC hour and MOCK_MODE, kept by database triggers on AiRequest
    (migration 0005_spend_hours) in the transaction of each write, like SpendDay: the dashboard's chart
    of spend per hour reads a few rows, never the requests (sites.spend_hours)."""

    hour = models.DateTimeField()
    mock = models.BooleanField()
    requests = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=28, decimal_places=10, default=0)

    class Meta:
        verbose_name, verbose_name_plural = "hour's spend", "hours' spend"
        ordering = ["-hour"]
        constraints = [models.UniqueConstraint(fields=["hour", "mock"], name="spend_hour_once")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00{' (mock)' if self.mock else ''}: {self.cost_usd}"

