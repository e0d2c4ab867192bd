"""The email breaker: email-sending pauses itself (a QueuePause by EMAIL_BREAKER) when sending has
gone wrong in a way more sending only makes worse.

It trips when
- sends to EMAIL_BREAKER_REFUSED_RECIPIENTS distinct recipients were refused on our side (5.7.x relay,
  login, DMARC, policy; content refused after DATA; a 5xx without an enhanced code) within
  EMAIL_BREAKER_REFUSED_WINDOW_SECONDS: the relay, the credentials, the DNS or the content is wrong,
  and every further message would only be refused (and dead-lettered after its last attempt);
- bounces reach EMAIL_BREAKER_BOUNCE_PERCENT, or complaints EMAIL_BREAKER_COMPLAINT_PERCENT, of the
  messages sent or refused in EMAIL_BREAKER_RATE_WINDOW_SECONDS, once at least EMAIL_BREAKER_MIN_SENDS
  of them are in it (fewer, and one bounce would be a rate). Only bounces and complaints that came from
  a send (a message or a provider's event) count: an imported list or a person's entry does not.

It does not resume by itself: what trips it is something only a person can fix (a relay login, a DMARC
record, the content, a list that bounces), and a breaker that reopened on a timer would spend each
waiting message's attempts against the same refusal and keep hurting the sender's reputation. A person
lifts the pause (admin, Workers > Queue pauses, or `manage.py resume_queue email-sending`); the breaker
notices at its next sweep, closes its trip, and counts afresh from then, so the failures that tripped
it do not trip it again. Messages whose attempts ran out meanwhile are in the dead-letter queue with the
server's words; requeue them from there.

The leading dispatcher runs enforce_breaker() once a second (the "email breaker gate" duty, emails.apps);
a worker holds a send whose job was published before the pause (hold_if_paused, the gate's check before a
claimed job starts), so nothing more goes out.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q

from emails.models import BreakerTrip, Message, Suppression
from emails.services import EMAIL_QUEUE
from resilience.db import db_now
from resilience.numbers import percent
from workers.models import QueuePause
from workers.pausing import pause_queue

logger = logging.getLogger(__name__)

BREAKER_PAUSED_BY = "EMAIL_BREAKER"
# The rates read a day of messages: once a minute is soon enough for a rate over a day, and keeps
# that count off the leader's every-second round.
RATE_CHECK_SECONDS = 60.0
_rates_checked_at = float("-inf")
RESUME_HINT = "resume it in the admin (Workers > Queue pauses) or with manage.py resume_queue email-sending"


def _counting_from(now: datetime, window_seconds: float) -> datetime:
    """The start of a window ending now, never before the last lifted trip: those failures were seen."""
    start = now - timedelta(seconds=window_seconds)
    lifted = BreakerTrip.objects.aggregate(last=Max("resumed_at"))["last"]
    return max(start, lifted) if lifted else start


def refused_trip(now: datetime) -> tuple[str, str] | None:
    """(cause, reason) when enough distinct recipients were refused on our side in the window."""
    since = _counting_from(now, settings.EMAIL_BREAKER_REFUSED_WINDOW_SECONDS)
    refused = Message.objects.filter(last_failure=Message.Failure.OURS, last_failed_at__gte=since)
    recipients = refused.values("to_email").distinct().count()
    if recipients < settings.EMAIL_BREAKER_REFUSED_RECIPIENTS:
        return None
    latest = refused.order_by("-last_failed_at").values_list("last_error", flat=True).first() or ""
    minutes = settings.EMAIL_BREAKER_REFUSED_WINDOW_SECONDS / 60
    return BreakerTrip.Cause.REFUSED, (
        f"breaker: sends to {recipients} recipients were refused on our side in {minutes:g} min (the last: "
        f"{latest[:300]}); fix the relay, login, DNS or content, then {RESUME_HINT}")


def rate_trip(now: datetime) -> tuple[str, str] | None:
    """(cause, reason) when bounces or complaints reach their share of the recent sends."""
    since = _counting_from(now, settings.EMAIL_BREAKER_RATE_WINDOW_SECONDS)
    sends = Message.objects.filter(claimed_at__gte=since, status__in=[Message.Status.SENT,
                                                                       Message.Status.FAILED]).count()
    if sends < settings.EMAIL_BREAKER_MIN_SENDS:
        return None
    from_sending = Q(message_id__isnull=False) | ~Q(event_id="")
    recent = Suppression.objects.filter(from_sending, created_at__gte=since)
    hours = settings.EMAIL_BREAKER_RATE_WINDOW_SECONDS / 3600
    for cause, reason, limit in (
            (BreakerTrip.Cause.BOUNCES, Suppression.Reason.BOUNCE, settings.EMAIL_BREAKER_BOUNCE_PERCENT),
            (BreakerTrip.Cause.COMPLAINTS, Suppression.Reason.COMPLAINT, settings.EMAIL_BREAKER_COMPLAINT_PERCENT)):
        n = recent.filter(reason=reason).count()
        if 100.0 * n / sends >= limit:
            return cause, (f"breaker: {n} {cause} in {sends} messages ({percent(n, sends):g} %) over {hours:g} h "
                           f"reached {limit:g} %; clean the list before sending more, then {RESUME_HINT}")
    return None


def enforce_breaker() -> str | None:
    """The leading dispatcher's sweep: close the trip a person lifted, trip when a rule says so.
    Returns 'paused', 'resumed' or None."""
    global _rates_checked_at
    pause = QueuePause.objects.filter(queue=EMAIL_QUEUE).first()
    if pause is not None and pause.paused_by == BREAKER_PAUSED_BY:
        return None  # tripped: a person lifts it
    now = db_now()
    lifted = bool(BreakerTrip.objects.filter(resumed_at__isnull=True).update(resumed_at=now))
    if lifted:
        logger.warning("email-sending: the breaker's pause was lifted; counting failures afresh from now")
    if pause is not None:  # a person paused it: nothing to trip
        return "resumed" if lifted else None
    trip = refused_trip(now)
    if trip is None and time.monotonic() - _rates_checked_at >= RATE_CHECK_SECONDS:
        _rates_checked_at = time.monotonic()
        trip = rate_trip(now)
    if trip is None:
        return "resumed" if lifted else None
    cause, reason = trip
    with transaction.atomic():
        _, created = pause_queue(EMAIL_QUEUE, reason, paused_by=BREAKER_PAUSED_BY)
        if created:
            BreakerTrip.objects.create(cause=cause, reason=reason, tripped_at=now)
    if created:
        logger.error("email-sending paused by the breaker: %s", reason)
    return "paused" if created else None


def hold_if_paused() -> str | None:
    """The gate before a claimed send starts: the breaker has paused the queue since the job was
    published, so it goes back to waiting, its attempt not made (never counted, never dead-lettered)."""
    if QueuePause.objects.filter(queue=EMAIL_QUEUE, paused_by=BREAKER_PAUSED_BY).exists():
        return "the breaker paused the queue"
    return None