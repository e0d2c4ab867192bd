"""AI_DAILY_BUDGET_USD: when the day's spend (UTC, by the database's clock: every paid request,
AiRequest, the ones that made no site included; MOCK_MODE's never) reaches it, the site-generation
queue pauses itself (a QueuePause with reason `budget`): its jobs wait in the ledger, none is
dead-lettered, health shows it paused, not unhealthy. The leading dispatcher lifts the pause itself at
its next sweep once the spend is below the budget again: the next UTC day, or a raised budget after a
restart.

Spend past the budget is bounded by the requests in flight when it was reached: every request (the
second ask after a malformed answer included) checks the budget just before it is made, and every
answer is on the books a few milliseconds after it arrives, so only requests already sent (at most
concurrency x pools of them, the dispatcher's in-flight bound) can still add to it. Over the budget a
request is not made: its job is given back to the ledger uncounted (Postpone), never failed.
"""
from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings

from sites.services import SITE_QUEUE, spend_on, usd, utc_day
from resilience.db import db_now
from workers.errors import Postpone
from workers.models import QueuePause
from workers.pausing import pause_queue, resume_queue

logger = logging.getLogger(__name__)

# Who paused: the budget's own pause is told apart from a person's, which it never lifts.
BUDGET_PAUSED_BY = "AI_DAILY_BUDGET_USD"
# A job stopped by the budget waits this long before the ledger offers it again; the pause holds it
# past that until the budget allows.
BUDGET_WAIT_SECONDS = 60.0


def spend_today() -> Decimal:
    return spend_on(utc_day(db_now()))


def over_budget() -> tuple[bool, Decimal]:
    budget = settings.AI_DAILY_BUDGET_USD
    if budget is None:
        return False, Decimal(0)
    spent = spend_today()
    return spent >= budget, spent


def _pause(spent: Decimal) -> None:
    _, created = pause_queue(
        SITE_QUEUE,
        f"budget: {usd(spent)} spent today (UTC) reached AI_DAILY_BUDGET_USD={usd(settings.AI_DAILY_BUDGET_USD)}; "
        "resumes by itself at 00:00 UTC or when the budget is raised",
        paused_by=BUDGET_PAUSED_BY,
    )
    if created:
        logger.warning("site-generation paused: the day's AI spend %s reached the budget %s", usd(spent),
                       usd(settings.AI_DAILY_BUDGET_USD))


def enforce_daily_budget() -> str | None:
    """The leading dispatcher's check, once a second: pause at the budget, resume below it. Returns
    'paused', 'resumed' or None."""
    pause = QueuePause.objects.filter(queue=SITE_QUEUE).first()
    ours = pause is not None and pause.paused_by == BUDGET_PAUSED_BY
    if pause is not None and not ours:
        return None  # a person paused it: theirs to lift
    over, spent = over_budget()
    if over and pause is None:
        _pause(spent)
        return "paused"
    if not over and ours:
        resume_queue(SITE_QUEUE)
        logger.warning("site-generation resumed: the day's AI spend %s is below the budget %s", usd(spent),
                       usd(settings.AI_DAILY_BUDGET_USD) if settings.AI_DAILY_BUDGET_USD else "(none)")
        return "resumed"
    return None


def hold_if_over_budget() -> str | None:
    """The gate before a claimed job starts: over the budget, pause the queue; the runtime puts the
    job back to wait, its attempt never made (so never counted, never dead-lettered)."""
    over, spent = over_budget()
    if not over:
        return None
    _pause(spent)
    return "the day's AI budget is spent"


def check_before_request() -> None:
    """Just before a paid request: over the budget, pause the queue and give the job back to wait
    (raises Postpone); the request is not made."""
    over, spent = over_budget()
    if over:
        _pause(spent)
        raise Postpone(BUDGET_WAIT_SECONDS, f"the day's AI budget is spent ({usd(spent)} of "
                                            f"{usd(settings.AI_DAILY_BUDGET_USD)})")
