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
from sites.services import site_generation_job
from workers.errors import MissingResource, PermanentError
from workers.models import Job, QueuePause

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
    # The step cannot act before the lead's site exists: while site generation is still to make it
    # (its job waiting, running, or its queue paused by the budget), the step waits instead of failing.
    needs_site: bool = False


class SiteNotReady(Exception):
    """The lead has no site and its site-generation job ended without one (dead-lettered, or the site
    was deleted): a temporary failure, retried with backoff; after the last attempt the run is
    dead-lettered at this step, to be requeued once the site exists."""


class NoSiteComing(MissingResource):
    """The lead has no site and no site-generation job (it was never qualified): no site will ever come."""


# --- waiting for the lead's site ------------------------------------------------------------------

# While the site is still to be made, the step asks again after 30 s, then twice as long each time, up
# to 15 minutes. Site generation paused by the daily budget stays paused until 00:00 UTC, so a wait
# can last a day: growing waits keep that to about a hundred checks (each takes a start slot of the
# delivery queue's rate limit, shared with the runs that can go on), and the cap bounds how late a
# delivery goes on once its site exists, while a site made in seconds is picked up in seconds.
SITE_WAIT_FIRST_SECONDS = 30.0
SITE_WAIT_MOST_SECONDS = 900.0


def site_wait_seconds(waits: int) -> float:
    """How long to wait after `waits` earlier waits of the same step."""
    return min(SITE_WAIT_MOST_SECONDS, SITE_WAIT_FIRST_SECONDS * 2 ** min(waits, 16))


def no_site_coming(lead: Lead) -> str:
    """Why `lead`, which has no site and no site-generation job, will never get a site."""
    if lead.status == Lead.Status.DISQUALIFIED:
        why = f"it is disqualified (score {lead.score}), and only a qualified lead's site is generated"
    else:
        why = ("it is qualified but never went through lead processing (or its site was deleted after its job was "
               "pruned)")
    return f"lead {lead.pk} has no site and no site-generation job: {why}"


def check_site_coming(lead: Lead) -> None:
    """NoSiteComing unless the lead has its site or a site-generation job that may make it."""
    if not Site.objects.filter(lead_id=lead.pk).exists() and site_generation_job(lead.pk) is None:
        raise NoSiteComing(no_site_coming(lead))


def site_wait_reason(lead: Lead) -> str | None:
    """Why a step needing the lead's site must wait (its site-generation job is still to run), or None
    when the site exists. Raises when the site will not come by waiting: NoSiteComing when the lead has
    no site-generation job, SiteNotReady when that job ended without a site."""
    if Site.objects.filter(lead_id=lead.pk).exists():
        return None
    job = site_generation_job(lead.pk)
    if job is None:
        raise NoSiteComing(no_site_coming(lead))
    if job.state == Job.State.DEAD:
        raise SiteNotReady(f"lead {lead.pk} has no site: its site-generation job {job.id} is dead-lettered; "
                           f"requeue it, then this delivery")
    if job.state == Job.State.SUCCEEDED:
        raise SiteNotReady(f"lead {lead.pk} has no site, although its site-generation job {job.id} succeeded "
                           f"(the site was deleted?)")
    pause = QueuePause.objects.filter(queue=job.queue).first()
    paused = f"; {job.queue} is paused: {pause.reason}" if pause else ""
    return f"the site of lead {lead.pk} is not made yet (its site-generation job is {job.state}{paused})"[:300]


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
    Step("publish_site", "Publish the site", record=publish_site, needs_site=True),
    Step("send_handover_email", "Send the handover email", record=send_handover_email, needs_site=True),
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
