"""Sending one message exactly once: the runner's outside-call steps for an email-sending job.

prepare  pending -> sending, stamped with the attempt's fence, committed before any network call
call     the email backend (SMTP, a file in MOCK_MODE, or a provider through django-anymail, given the
         job's idempotency key where the provider takes one)
record   sending -> sent with the provider's message id, in the transaction that completes the job
         (refused unless the fence holds)
failed   the server refused it (4xx, or the connection failed before DATA): back to pending, retried;
         5xx for the recipient: failed at once and the address marked bounced;
         anything else (lost after DATA): left `sending`, so the retry makes it `unknown`.

A message a later attempt finds `sending` may or may not have reached the server (its attempt died
somewhere between the claim and the record): it becomes `unknown` for a person, never sent blindly.
"""
from __future__ import annotations

import logging
import smtplib
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models.functions import Now

from dlq.redaction import redact_text
from emails import services, tracking
from emails.events import METADATA_KEY, attach_events
from emails.models import Message
from workers.errors import InvalidData, MissingResource
from workers.outside import AlreadyDone, Attempt

logger = logging.getLogger(__name__)
S = Message.Status


class Bounced(InvalidData):
    """The server refused the recipient with a 5xx: a bad mailbox. Retrying cannot help."""


class NotSent(Exception):
    """The server or the network refused the message before it could have been accepted: safe to send again."""


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


def headers_for(message: Message) -> dict[str, str]:
    headers = {"Message-ID": message.message_id_header}
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
        if services.suppressed_addresses([message.to_email], marketing=message.marketing):
            return Prepared(message.id, "skip")
        Message.objects.filter(pk=message.pk).update(
            status=S.SENDING, fence=attempt.fence, claimed_at=Now(), send_attempts=message.send_attempts + 1,
            updated_at=Now())
        return Prepared(message.id, "send", to=message.to_email, subject=message.subject, text=message.text_body,
                        html=message.html_body, headers=headers_for(message))

    def call(self, attempt: Attempt, prepared: Prepared) -> str:
        if prepared.action != "send":
            return prepared.action
        connection = get_connection()
        email = EmailMultiAlternatives(prepared.subject, prepared.text, settings.DEFAULT_FROM_EMAIL, [prepared.to],
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
            if mine.update(status=S.FAILED, last_error=error, updated_at=Now()):
                services.mark_bounced(prepared.to, error)
        elif isinstance(exc, NotSent):
            mine.update(status=S.PENDING, last_error=error, updated_at=Now())
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
    """What a send failure means for the message: Bounced (5xx for the recipient), NotSent (refused,
    or failed before the DATA command), or `exc` itself: it may have been accepted. `data_started` is
    our SMTP backend's word; a backend that cannot say (a provider's) counts as started."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            return Bounced(f"recipient refused: {exc.recipients}")
        return NotSent(f"recipient refused for now: {exc.recipients}")
    if isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500:
        return Bounced(f"message refused: {exc.smtp_code} {exc.smtp_error!r}")
    if isinstance(exc, smtplib.SMTPResponseException):
        # 4xx anywhere; 5xx for the sender, the login or the greeting: our side or the server's, not
        # the mailbox's, so retried (and dead-lettered if it persists) without marking anyone bounced.
        return NotSent(f"server answered {exc.smtp_code} {exc.smtp_error!r}")
    if type(exc).__name__ == "AnymailRecipientsRefused":  # django-anymail: the provider refused every recipient
        return Bounced(f"provider refused the recipient: {exc}")
    status = getattr(exc, "status_code", None)  # django-anymail: the provider's HTTP answer, if any
    if isinstance(status, int) and 400 <= status < 500:
        return NotSent(f"provider answered {status}: {exc}")
    if not data_started:  # connection refused or lost, a bad login, a message that did not build ...
        return NotSent(f"failed before the message was sent: {type(exc).__name__}: {exc}")
    return exc
