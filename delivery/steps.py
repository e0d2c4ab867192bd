"""The steps of a delivery, in the order they run, and what each one does.

Each step is its own ledger job (delivery.services.StepWork): `call` runs with no transaction open
(the outside effect: it may run again if the worker dies before the step is recorded, so it sends
the step's idempotency key), `record` runs in the transaction that marks the step done, enqueues
the next one and completes the job (the database effect: it commits once, or not at all).

The site comes from sites/ (find_site, mark_site_published) and the handover email goes through
emails/ (queue_message, idempotent by the step's key).
"""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.functions import Now

from emails.services import queue_message
from leads.models import Lead
from sites.models import Site
from workers.errors import PermanentError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """What a step needs, read in the step's first short transaction."""
    run_id: int
    lead_id: int
    lead_email: str
    step_id: int
    position: int
    name: str
    idempotency_key: str  # stable for the step across attempts and requeues: send it with every effect


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    call: Callable[[StepContext], dict[str, Any]] | None = None
    record: Callable[[StepContext, dict[str, Any]], dict[str, Any]] | None = None


class SiteNotReady(Exception):
    """The lead has no site yet (still generating?): a temporary failure, retried with backoff; after
    the last attempt the run is dead-lettered at this step, to be requeued once the site exists."""


# --- publish the site -----------------------------------------------------------------------------

def find_site(lead_id: int) -> Site | None:
    """The lead's site, locked for this transaction, or None when it has none yet."""
    return Site.objects.select_for_update().filter(lead_id=lead_id).first()


def mark_site_published(site: Site) -> dict[str, Any]:
    """A generated site is served from the moment it is recorded (the outreach email links to it):
    publishing confirms it is. One a person withdrew stays withdrawn: that is their call to undo."""
    if site.status != Site.Status.PUBLISHED:
        raise PermanentError(f"site {site.public_id} is {site.status}: publish it again in the admin, then "
                             f"requeue this delivery")
    return {"site_id": site.pk, "url": site.public_url}


def publish_site(ctx: StepContext, called: dict[str, Any]) -> dict[str, Any]:
    site = find_site(ctx.lead_id)
    if site is None:
        raise SiteNotReady(f"lead {ctx.lead_id} has no site yet")
    return mark_site_published(site)


# --- send the handover email ----------------------------------------------------------------------

def send_handover_email(ctx: StepContext, called: dict[str, Any]) -> dict[str, Any]:
    """Queue the handover email in the transaction that marks this step done; the step's key makes a
    second run of the step find the first message instead of sending another."""
    site = find_site(ctx.lead_id)
    if site is None:
        raise SiteNotReady(f"lead {ctx.lead_id} has no site to hand over")
    lead = Lead.objects.get(pk=ctx.lead_id)
    message = queue_message(key=ctx.idempotency_key, to=lead.email, template="handover", lead_id=lead.pk,
                            context={"first_name": lead.first_name, "site_url": site.public_url})
    return {"email": "handover", "message_id": str(message.pk), "idempotency_key": ctx.idempotency_key}


# --- notify the team ------------------------------------------------------------------------------

NOTIFY_TIMEOUT_SECONDS = 10


def notify_team(ctx: StepContext) -> dict[str, Any]:
    """Tell the team the lead is handed over: a POST to DELIVERY_NOTIFY_WEBHOOK_URL with the step's
    Idempotency-Key (MOCK_MODE off), else a log line. 4xx but 408/429 is permanent; the rest retried."""
    url = settings.DELIVERY_NOTIFY_WEBHOOK_URL
    if settings.MOCK_MODE or not url:
        logger.warning("delivery run %s: lead %s (%s) is handed over; team notified", ctx.run_id, ctx.lead_id,
                       ctx.lead_email)
        return {"notified": "log"}
    body = {"event": "delivery.handed_over", "run_id": ctx.run_id, "lead_id": ctx.lead_id,
            "text": f"Lead {ctx.lead_email} is handed over (delivery run {ctx.run_id})."}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key})
    # The URL is not quoted in any error: a webhook URL usually carries its secret.
    try:
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentError(f"the team webhook refused the notification: HTTP {exc.code}") from None
        raise ConnectionError(f"the team webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"the team webhook cannot be reached: {type(reason).__name__}") from None
    return {"notified": "webhook", "status": status}


# --- mark delivered -------------------------------------------------------------------------------

def mark_delivered(ctx: StepContext, called: dict[str, Any]) -> dict[str, Any]:
    Lead.objects.filter(pk=ctx.lead_id, delivered_at__isnull=True).update(delivered_at=Now(), updated_at=Now())
    delivered_at = Lead.objects.filter(pk=ctx.lead_id).values_list("delivered_at", flat=True).first()
    return {"delivered_at": delivered_at.isoformat() if delivered_at else None}


# Names are stored in each step row: rename one only with a data migration.
STEPS: tuple[Step, ...] = (
    Step("publish_site", "Publish the site", record=publish_site),
    Step("send_handover_email", "Send the handover email", record=send_handover_email),
    Step("notify_team", "Notify the team", call=notify_team),
    Step("mark_delivered", "Mark delivered", record=mark_delivered),
)


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise PermanentError(f"no delivery step named {name!r} (steps: {', '.join(s.name for s in STEPS)})")


def step_title(name: str) -> str:
    return next((step.title for step in STEPS if step.name == name), name)
