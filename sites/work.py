"""The site-generation job in the outside-call shape (workers.outside): prepare reads the lead in a
short transaction, call asks Claude with no transaction open, record stores the site and its cost
in the transaction that completes the job."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from emails.services import queue_outreach
from leads.models import Lead
from sites import claude
from sites.content import LeadBrief, SiteContent
from sites.models import Site, new_public_id
from sites.services import brief_for, cost_of, design_for, log_cost_lines, render_site
from workers.errors import MissingResource
from workers.outside import AlreadyDone, Attempt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteRequest:
    lead_id: int
    brief: LeadBrief
    design: str


@dataclass(frozen=True)
class GeneratedSite:
    public_id: str
    content: SiteContent
    html: str
    answer: claude.Answer
    model: str
    cost: Decimal
    duration_ms: int


class SiteWork:
    def prepare(self, attempt: Attempt) -> SiteRequest:
        lead_id = attempt.payload.get("lead_id")
        if not isinstance(lead_id, int):
            raise MissingResource(f"job payload has no lead id: {attempt.payload!r}")
        # A redelivered or recovered job whose site exists never calls the API again.
        if Site.objects.filter(Q(job_id=attempt.job_id) | Q(lead_id=lead_id)).exists():
            raise AlreadyDone(f"lead {lead_id} already has its site")
        lead = Lead.objects.filter(pk=lead_id).first()
        if lead is None:
            raise MissingResource(f"lead {lead_id} does not exist (deleted since it qualified)")
        return SiteRequest(lead_id, brief_for(lead), design_for(lead_id))

    def call(self, attempt: Attempt, prepared: SiteRequest) -> GeneratedSite:
        started = time.monotonic()
        answer = claude.ask_for_site(prepared.brief, attempt.idempotency_key)
        duration_ms = int((time.monotonic() - started) * 1000)
        model = settings.ANTHROPIC_MODEL
        return GeneratedSite(
            public_id=new_public_id(), content=answer.content,
            html=render_site(answer.content, prepared.design, prepared.brief), answer=answer, model=model,
            cost=cost_of(answer.usage, model), duration_ms=duration_ms,
        )

    def record(self, attempt: Attempt, prepared: SiteRequest, result: GeneratedSite) -> None:
        usage = result.answer.usage
        try:
            with transaction.atomic():  # a savepoint: a refused insert leaves the job's transaction usable
                site = Site.objects.create(
                    public_id=result.public_id, lead_id=prepared.lead_id, job_id=attempt.job_id,
                    design=prepared.design, content=result.content.as_json(), html=result.html, model=result.model,
                    mock=result.answer.mock, api_requests=result.answer.requests,
                    input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                    cache_write_tokens=usage.cache_write_tokens, cache_read_tokens=usage.cache_read_tokens,
                    cost_usd=result.cost, duration_ms=result.duration_ms,
                )
        except IntegrityError:
            # This job's (or this lead's) site is already recorded: a success, not a second row.
            logger.info("job %s: the site of lead %s was already recorded", attempt.job_id, prepared.lead_id)
            return
        # The outreach email with the site's link, in the transaction that records the site: both or neither.
        queue_outreach(prepared.lead_id, site.public_url)
        transaction.on_commit(lambda: log_cost_lines(site))
