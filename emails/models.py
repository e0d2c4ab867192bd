"""Email: campaigns, one row per message (the claim that makes a send happen once), and the addresses
that must not be written to again."""
from __future__ import annotations

import dataclasses
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

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

    class Failure(models.TextChoices):
        TEMPORARY = "temporary", "temporary (4xx, the network)"
        OURS = "ours", "refused: our side or the message (5.7.x, relay, content)"
        MAILBOX = "mailbox", "refused: the mailbox (5.1.x, 5.2.x)"

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
    # Whose fault the last failed attempt was (emails.refusals): the breaker counts the recipients
    # whose sends were refused on our side in its window.
    last_failure = models.CharField(max_length=10, choices=Failure.choices, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
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
            models.Index(fields=["last_failed_at"], condition=Q(last_failure="ours"), name="email_refused_ours_idx"),
            models.Index(fields=["claimed_at"], name="email_claimed_idx"),
            models.Index(fields=["provider_message_id"], condition=~Q(provider_message_id=""),
                         name="email_provider_message_id_idx"),
            # The operator's search (monitoring.search): by address whatever its case, and by job.
            models.Index(Lower("to_email"), name="email_to_lower_idx"),
            models.Index(fields=["job_id"], name="email_job_idx"),
        ]
        permissions = [("resolve_unknown_message", "Can mark an unknown message sent or send it again")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"

    @property
    def message_id_header(self) -> str:
        return f"<msg-{self.id}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


class Suppression(models.Model):
    """An address not to write to, and why: one row per (address, reason), each with where it came
    from (the message, the provider's event) and when. Made only through emails.suppression.suppress.
    A bounce, a complaint or a manual entry stops all mail; an unsubscribe stops marketing mail."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "bounce (the mailbox refused)"
        COMPLAINT = "complaint", "complaint (marked as spam)"
        UNSUBSCRIBE = "unsubscribe", "unsubscribe"
        MANUAL = "manual", "by hand"

    # Stored lower-cased (emails.suppression.normalise): "Jane@Acme.io" and "jane@acme.io" are one mailbox
    # for every provider we send to, and one of them must not slip through.
    email = models.EmailField(max_length=254)
    reason = models.CharField(max_length=12, choices=Reason.choices)
    # A plain id, like Message.job_id: a provider's event may name a message this database never had.
    message_id = models.UUIDField(null=True, blank=True, help_text="The message whose refusal or event caused it.")
    event_id = models.CharField(max_length=255, blank=True, help_text="The provider's event id, for provider events.")
    detail = models.TextField(blank=True, help_text="The server's or provider's words, or a person's note.")
    by = models.CharField(max_length=150, blank=True, help_text="Who or what suppressed it (smtp, a provider, "
                                                                "a person).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name, verbose_name_plural = "suppressed address", "suppressed addresses"
        constraints = [models.UniqueConstraint(fields=["email", "reason"], name="email_one_suppression_per_reason")]
        indexes = [models.Index(fields=["reason", "created_at"], name="email_suppression_recent_idx")]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"


class BreakerTrip(models.Model):
    """A time the email breaker paused the email-sending queue: why, and when a person lifted it.
    The breaker counts failures only since the last trip was lifted, so a lifted pause is not
    tripped again by the failures that caused it."""

    class Cause(models.TextChoices):
        REFUSED = "refused", "sends refused on our side"
        BOUNCES = "bounces", "bounce rate"
        COMPLAINTS = "complaints", "complaint rate"

    cause = models.CharField(max_length=12, choices=Cause.choices)
    reason = models.TextField()
    tripped_at = models.DateTimeField(default=timezone.now)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-tripped_at"]
        verbose_name, verbose_name_plural = "email breaker trip", "email breaker trips"

    def __str__(self) -> str:
        return f"{self.get_cause_display()} at {self.tripped_at:%Y-%m-%d %H:%M}"


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
