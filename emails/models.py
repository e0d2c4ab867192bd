"""Email: campaigns, one row per message (the claim that makes a send happen once), and the addresses
that must not be written to again."""
from __future__ import annotations

import dataclasses
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from emails import templating


class Campaign(models.Model):
    class Audience(models.TextChoices):
        QUALIFIED_WITH_SITE = "qualified_with_site", "qualified leads with a site"
        QUALIFIED = "qualified", "every qualified lead"

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        LAUNCHED = "launched", "launched"

    name = models.CharField(max_length=200)
    # The campaign template language (emails.templating), checked by clean(): staff write these.
    subject_template = models.CharField(max_length=500)
    text_template = models.TextField(help_text="Plain-text part. {{ first_name }}, {{ company|default:\"you\" }} ... "
                                               "{{ site_url }}, {{ unsubscribe_url }} (added at the end when missing).")
    html_template = models.TextField(blank=True, help_text="HTML part (optional), sanitised when saved; every "
                                                           "http(s) link is tracked.")
    # Why the templates could not be carried over from Django's template language (migration 0002).
    template_note = models.TextField(blank=True, editable=False)
    audience = models.CharField(max_length=30, choices=Audience.choices, default=Audience.QUALIFIED_WITH_SITE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    launched_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("launch_campaign", "Can launch a campaign (send it to its audience)")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse templates that break the language's rules, with each problem's place and reason;
        store the HTML part sanitised. A launched campaign's templates are history: not checked."""
        if self.status != self.Status.DRAFT:
            return
        try:
            self.html_template = templating.clean_campaign(self.subject_template, self.text_template,
                                                           self.html_template)
        except templating.TemplateError as exc:
            errors: dict[str, list[str]] = {}
            for problem in exc.problems:  # each under its own field: subject_template, text_template ...
                errors.setdefault(f"{problem.part}_template", []).append(str(dataclasses.replace(problem, part="")))
            raise ValidationError(errors) from None
        self.template_note = ""


class Message(models.Model):
    """One email to one address. The row is the claim: pending -> sending (committed, stamped with
    the attempt's fence) before the SMTP call, sending -> sent after it. A later attempt that finds it
    `sending` cannot know whether the server took it, so it becomes `unknown` for a person."""

    class Kind(models.TextChoices):
        OUTREACH = "outreach", "outreach"
        CAMPAIGN = "campaign", "campaign"
        TRANSACTIONAL = "transactional", "transactional"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        UNKNOWN = "unknown", "unknown (may have been sent)"
        SKIPPED = "skipped", "skipped (unsubscribed or bounced)"

    # Public: in the Message-ID and (signed) in the tracking links.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The caller's idempotency key: the same key never makes a second message.
    key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=15, choices=Kind.choices)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="messages")
    lead = models.ForeignKey("leads.Lead", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="email_messages")
    to_email = models.EmailField(max_length=254)
    subject = models.CharField(max_length=998)
    text_body = models.TextField()
    html_body = models.TextField(blank=True)
    # Marketing mail carries an unsubscribe link and List-Unsubscribe headers, and is not sent to an
    # unsubscribed address; transactional mail (a handover) is not.
    marketing = models.BooleanField(default=True)
    # The original targets of the tracked links, in order: a click token names an index here, so a
    # click can only ever lead to a link this message contained.
    links = models.JSONField(default=list, blank=True)
    # The site's link of an outreach message: the audience "qualified leads with a site" reads it.
    site_url = models.URLField(max_length=500, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    fence = models.BigIntegerField(null=True, blank=True)  # the attempt that set it `sending`
    job_id = models.UUIDField(null=True, blank=True)  # plain id: the ledger is pruned, messages are not
    send_attempts = models.PositiveIntegerField(default=0)
    resends = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    click_count = models.PositiveIntegerField(default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name, verbose_name_plural = "email message", "email messages"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "lead"], condition=Q(campaign__isnull=False),
                                    name="email_one_message_per_campaign_and_lead"),
            models.UniqueConstraint(fields=["lead"], condition=Q(kind="outreach"),
                                    name="email_one_outreach_per_lead"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="email_campaign_status_idx"),
            models.Index(fields=["status"], condition=Q(status="unknown"), name="email_unknown_idx"),
        ]
        permissions = [("resolve_unknown_message", "Can mark an unknown message sent or send it again")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"

    @property
    def message_id_header(self) -> str:
        return f"<msg-{self.id}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


class Suppression(models.Model):
    """An address not to write to: it unsubscribed (marketing mail stops) or bounced (all mail stops)."""

    email = models.EmailField(max_length=254, unique=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name, verbose_name_plural = "suppressed address", "suppressed addresses"

    def __str__(self) -> str:
        reasons = [name for name, when in (("unsubscribed", self.unsubscribed_at), ("bounced", self.bounced_at)) if when]
        return f"{self.email} ({', '.join(reasons) or 'active'})"
