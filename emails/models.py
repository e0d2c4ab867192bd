"""Email: campaigns, one row per message (the claim that makes a send happen once), and the addresses
that must not be written to again."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Campaign(models.Model):
    class Audience(models.TextChoices):
        QUALIFIED_WITH_SITE = "qualified_with_site", "qualified leads with a site"
        QUALIFIED = "qualified", "every qualified lead"

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        LAUNCHED = "launched", "launched"

    name = models.CharField(max_length=200)
    # Django template language; the context is the lead's fields, site_url and unsubscribe_url.
    subject_template = models.CharField(max_length=500)
    text_template = models.TextField(help_text="Plain-text part. Context: lead (first_name, company ...), "
                                               "site_url, unsubscribe_url (added at the end when missing).")
    html_template = models.TextField(blank=True, help_text="HTML part (optional); every http(s) link is tracked.")
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
    # The provider's id for it (anymail's message.anymail_status.message_id): its events name it.
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
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
            models.Index(fields=["provider_message_id"], condition=~Q(provider_message_id=""),
                         name="email_provider_message_id_idx"),
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


class EmailEvent(models.Model):
    """One tracking event a provider posted to /email/events/<provider>/, recorded once however often
    the provider posts it again (provider, event_id is unique)."""

    class Type(models.TextChoices):  # django-anymail's normalised event types
        QUEUED = "queued", "queued"
        SENT = "sent", "sent"
        REJECTED = "rejected", "rejected"
        FAILED = "failed", "failed"
        BOUNCED = "bounced", "bounced"
        DEFERRED = "deferred", "deferred"
        DELIVERED = "delivered", "delivered"
        AUTORESPONDED = "autoresponded", "autoresponded"
        OPENED = "opened", "opened"
        CLICKED = "clicked", "clicked"
        COMPLAINED = "complained", "complained"
        UNSUBSCRIBED = "unsubscribed", "unsubscribed"
        SUBSCRIBED = "subscribed", "subscribed"
        UNKNOWN = "unknown", "unknown"

    provider = models.CharField(max_length=30)
    # The provider's event id, or (for providers that give none) a digest of the event as posted.
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=15, choices=Type.choices)
    recipient = models.CharField(max_length=254, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    provider_message_id = models.CharField(max_length=255, blank=True)
    reject_reason = models.CharField(max_length=30, blank=True)
    description = models.TextField(blank=True)  # the provider's words (and the receiving server's)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    suppressed = models.BooleanField(default=False)  # this event stopped mail to the address
    payload = models.JSONField(default=dict, blank=True)  # as posted, signatures and secrets removed

    class Meta:
        ordering = ["-received_at"]
        verbose_name, verbose_name_plural = "email event", "email events"
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="email_event_once")]
        indexes = [models.Index(fields=["provider_message_id"], name="email_event_provider_msg_idx")]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.recipient}"
