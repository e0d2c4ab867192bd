"""Sending one message exactly once: the runner's outside-call steps for an email-sending job.

prepare  pending -> sending, stamped with the attempt's fence, committed before any network call
call     the email backend (SMTP, a file in MOCK_MODE, or a provider through django-anymail, given the
         job's idempotency key where the provider takes one)
record   sending -> sent with the provider's message id, in the transaction that completes the job
         (refused unless the fence holds)
failed   refused for now (4xx, or the connection failed before DATA): back to pending, retried;
         refused on our side or for the message (5.7.x, relay, login, content, a 5xx without an
         enhanced code: emails.refusals): back to pending, retried, then dead-lettered with the
         server's words; nobody suppressed, and the breaker counts the recipient;
         refused for the mailbox (5.1.x, 5.2.x): failed at once and the address suppressed (bounce);
         anything else (lost after DATA): left `sending`, so the retry makes it `unknown`.

A message a later attempt finds `sending` may or may not have reached the server (its attempt died
somewhere between the claim and the record): it becomes `unknown` for a person, never sent blindly.
"""
from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models.functions import Now

from resilience.redaction import redact_text
from emails import refusals, suppression, tracking
from emails.events import METADATA_KEY, attach_events
from emails.models import Message
from leads.models import Lead
from resilience.text import header_text
from workers.errors import InvalidData, MissingResource
from workers.outside import AlreadyDone, Attempt

logger = logging.getLogger(__name__)
S = Message.Status
F = Message.Failure


class Bounced(InvalidData):
    """The server refused the recipient's mailbox (5.1.x, 5.2.x; a provider's equivalent). Retrying
    cannot help. `by`: who said so, for the suppression ("smtp", "provider")."""

    def __init__(self, message: str, *, by: str) -> None:
        super().__init__(message)
        self.by = by


class NotSent(Exception):
    """The server or the network refused the message before it could have been accepted: safe to send again."""


class Refused(NotSent):
    """A permanent refusal that is about us or the message, not the recipient (5.7.x policy, relay,
    login, DMARC, content, a 5xx without an enhanced code): not sent, retried in case it was fixed,
    dead-lettered with the server's words after the last attempt, and counted by the breaker."""


@dataclass(frozen=True)
class Prepared:
    message_id: uuid.UUID
    action: str  # "send", "unknown" (found `sending`), "skip" (address suppressed meanwhile)
    found_fence: int | None = None  # for "unknown": the fence of the attempt that left it `sending`
    to: str = ""
    subject: str = ""
    text: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    sender: str = ""  # the From header
    recipient: str = ""  # the To header: `to` with the lead's name


def sender_for(message: Message) -> str:
    """Marketing mail (outreach, campaigns) from CAMPAIGN_FROM_EMAIL, the rest from DEFAULT_FROM_EMAIL:
    complaints about marketing then do not reach the reputation of the address handovers come from."""
    return settings.CAMPAIGN_FROM_EMAIL if message.marketing else settings.DEFAULT_FROM_EMAIL


def recipient_for(message: Message) -> str:
    """The To header: the lead's name, made safe for a header, before the address when there is one."""
    names = Lead.objects.filter(pk=message.lead_id).values_list("first_name", "last_name").first() or ("", "")
    name = header_text(" ".join(names))
    return str(Address(display_name=name, addr_spec=message.to_email)) if name else message.to_email


def list_id(message: Message, sender: str) -> str:
    """RFC 2919 List-Id, one per kind of mail and one per campaign, under the sender's domain: mail
    providers and filters group (and judge) each list apart, so a campaign's complaints stay its own."""
    label = f"campaign-{message.campaign_id}" if message.campaign_id else message.kind
    return f"<{label}.{parseaddr(sender)[1].rpartition('@')[2].lower()}>"


def headers_for(message: Message, sender: str) -> dict[str, str]:
    # Django writes Date as "-0000" (RFC 5322: zone unknown), which filters score; ours is UTC, "+0000".
    headers = {"Message-ID": message.message_id_header, "Date": format_datetime(datetime.now(timezone.utc)),
               "List-Id": list_id(message, sender)}
    if message.marketing:
        # RFC 8058 one-click: mail providers POST "List-Unsubscribe=One-Click" to this URL.
        headers["List-Unsubscribe"] = f"<{tracking.unsubscribe_url(message.id)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


class EmailWork:
    def prepare(self, attempt: Attempt) -> Prepared:
        message = Message.objects.select_for_update().filter(pk=attempt.payload.get("message_id")).first()
        if message is None:
            raise MissingResource(f"email message {attempt.payload.get('message_id')} does not exist")
        if message.status == S.SENDING:
            return Prepared(message.id, "unknown", found_fence=message.fence)
        if message.status not in (S.PENDING, S.FAILED):  # sent, unknown (a person decides), skipped
            raise AlreadyDone(f"message {message.id} is {message.status}")
        if suppression.is_suppressed(message.to_email, marketing=message.marketing):
            return Prepared(message.id, "skip")
        Message.objects.filter(pk=message.pk).update(
            status=S.SENDING, fence=attempt.fence, claimed_at=Now(), send_attempts=message.send_attempts + 1,
            updated_at=Now())
        sender = sender_for(message)
        return Prepared(message.id, "send", to=message.to_email, subject=header_text(message.subject),
                        text=message.text_body, html=message.html_body, headers=headers_for(message, sender),
                        sender=sender, recipient=recipient_for(message))

    def call(self, attempt: Attempt, prepared: Prepared) -> str:
        if prepared.action != "send":
            return prepared.action
        connection = get_connection()
        email = EmailMultiAlternatives(prepared.subject, prepared.text, prepared.sender, [prepared.recipient],
                                       headers=prepared.headers, connection=connection)
        if prepared.html:
            email.attach_alternative(prepared.html, "text/html")
        # Read by django-anymail's backends, ignored by the others: the provider echoes the metadata
        # in its events, and the job's key reaches the providers that take one (emails.backends).
        email.metadata = {METADATA_KEY: str(prepared.message_id)}
        email.idempotency_key = attempt.idempotency_key
        try:
            email.send()
        except Exception as exc:
            raise classify(exc, data_started=getattr(connection, "data_started", True)) from exc
        return provider_message_id(email)

    def record(self, attempt: Attempt, prepared: Prepared, result: str) -> None:
        mine = Message.objects.filter(pk=prepared.message_id)
        if prepared.action == "send":
            if not mine.filter(status=S.SENDING, fence=attempt.fence).update(
                    status=S.SENT, sent_at=Now(), last_error="", provider_message_id=result, updated_at=Now()):
                logger.warning("message %s: sent, but no longer `sending` under fence %s", prepared.message_id,
                               attempt.fence)
            attach_events(prepared.message_id, result)
        elif prepared.action == "unknown":
            if mine.filter(status=S.SENDING, fence=prepared.found_fence).update(
                    status=S.UNKNOWN, last_error="found `sending` by a later attempt: it may or may not have been "
                                                 "sent; mark it sent or send it again", updated_at=Now()):
                logger.error("message %s was found `sending` by a later attempt: marked unknown, not sent again",
                             prepared.message_id)
        elif prepared.action == "skip":
            mine.filter(status__in=[S.PENDING, S.FAILED]).update(status=S.SKIPPED, updated_at=Now())

    def failed(self, attempt: Attempt, prepared: Prepared, exc: BaseException) -> None:
        mine = Message.objects.filter(pk=prepared.message_id, status=S.SENDING, fence=attempt.fence)
        error = redact_text(f"{type(exc).__name__}: {exc}")[:2000]
        if isinstance(exc, Bounced):
            if mine.update(status=S.FAILED, last_error=error, last_failure=F.MAILBOX, last_failed_at=Now(),
                           updated_at=Now()):
                suppression.suppress(prepared.to, suppression.Reason.BOUNCE, message_id=prepared.message_id,
                                     detail=error, by=exc.by)
        elif isinstance(exc, NotSent):
            mine.update(status=S.PENDING, last_error=error, updated_at=Now(), last_failed_at=Now(),
                        last_failure=F.OURS if isinstance(exc, Refused) else F.TEMPORARY)
        else:  # it may have been accepted: stays `sending`, and the next attempt makes it `unknown`
            mine.update(last_error=error, updated_at=Now())


def provider_message_id(email: EmailMultiAlternatives) -> str:
    """The provider's id for the message just sent (anymail's anymail_status), "" for SMTP."""
    status = getattr(email, "anymail_status", None)
    found = getattr(status, "message_id", None)
    if isinstance(found, str):
        return found[:255]
    if isinstance(found, set | frozenset) and len(found) == 1:  # one id per recipient; we send to one
        return str(next(iter(found)))[:255]
    return ""


def classify(exc: BaseException, *, data_started: bool) -> BaseException:
    """What a send failure means for the message: Bounced (the mailbox refused), Refused (a permanent
    refusal about us or the message), NotSent (refused for now, or failed before the DATA command), or
    `exc` itself: it may have been accepted. `data_started` is our SMTP backend's word; a backend that
    cannot say (a provider's) counts as started."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        said = "; ".join(refusals.words(code, text) for code, text in replies)
        kinds = {refusals.kind_of_reply(code, text) for code, text in replies}
        if refusals.MAILBOX in kinds:
            return Bounced(f"the mailbox was refused at RCPT: {said}", by="smtp")
        if refusals.OURS in kinds:
            return Refused(f"refused at RCPT, not for the mailbox: {said}")
        return NotSent(f"recipient refused for now: {said}")
    if isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500:
        said = refusals.words(exc.smtp_code, exc.smtp_error)
        if refusals.kind_of_reply(exc.smtp_code, exc.smtp_error) == refusals.MAILBOX:
            return Bounced(f"the mailbox was refused after DATA: {said}", by="smtp")
        return Refused(f"the message was refused after DATA: {said}")
    if isinstance(exc, smtplib.SMTPResponseException):
        # The greeting, the login, MAIL FROM: never the recipient's mailbox. 5xx is ours for good
        # (a bad login, a sender the relay refuses): Refused, counted by the breaker; 4xx is for now.
        said = refusals.words(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code >= 500:
            return Refused(f"the server refused us: {said}")
        return NotSent(f"server answered {said}")
    if type(exc).__name__ == "AnymailRecipientsRefused":  # django-anymail: the provider refused every recipient
        return Bounced(f"provider refused the recipient: {exc}", by="provider")
    status = getattr(exc, "status_code", None)  # django-anymail: the provider's HTTP answer, if any
    if isinstance(status, int) and 400 <= status < 500:
        return NotSent(f"provider answered {status}: {exc}")
    if not data_started:  # connection refused or lost, a bad login, a message that did not build ...
        return NotSent(f"failed before the message was sent: {type(exc).__name__}: {exc}")
    return exc
