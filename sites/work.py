"""The site-generation job in the outside-call shape (workers.outside): prepare reads the lead (and an
answer already paid for, if one is waiting) in a short transaction, call asks Claude with no
transaction open (each answer on the books as it arrives), record stores the site, links the paid
requests behind it and queues its email in the transaction that completes the job."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from emails.services import queue_outreach
from leads.models import Lead
from sites import claude
from sites.content import LeadBrief, MalformedAnswer, validate_content
from sites.models import AiRequest, Site, new_public_id
from sites.services import brief_for, design_for, log_cost_lines, render_site
from workers.errors import MissingResource
from workers.outside import AlreadyDone, Attempt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SiteRequest:
    lead_id: int
    brief: LeadBrief
    design: str
    unused: AiRequest | None  # a valid answer already paid for that made no site yet: used, not bought again


@dataclass(frozen=True)
class GeneratedSite:
    public_id: str
    answer: claude.Answer
    html: str
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
        # An earlier attempt's answer that arrived and was recorded, but whose site was not (its record
        # failed, its worker died, it was refused as late): this lead's content is already paid for.
        unused = (AiRequest.objects.filter(lead_id=lead_id, outcome=AiRequest.Outcome.VALID, site__isnull=True,
                                           mock=settings.MOCK_MODE)
                  .order_by("created_at").first())
        return SiteRequest(lead_id, brief_for(lead), design_for(lead_id), unused)

    def call(self, attempt: Attempt, prepared: SiteRequest) -> GeneratedSite:
        started = time.monotonic()
        answer = self._reuse(prepared.unused)
        if answer is None:
            answer = claude.ask_for_site(prepared.brief, claude.Payer(attempt.job_id, attempt.fence, prepared.lead_id,
                                                                      attempt.idempotency_key))
        else:
            logger.info("job %s: lead %s's answer %s was paid for already; used, not asked again", attempt.job_id,
                        prepared.lead_id, prepared.unused.request_id or prepared.unused.pk)
        return GeneratedSite(public_id=new_public_id(), answer=answer,
                             html=render_site(answer.content, prepared.design, prepared.brief),
                             duration_ms=int((time.monotonic() - started) * 1000))

    @staticmethod
    def _reuse(unused: AiRequest | None) -> claude.Answer | None:
        if unused is None:
            return None
        try:
            content = validate_content(unused.answer)
        except MalformedAnswer:  # valid when it arrived, refused by today's rules: ask anew
            return None
        return claude.answer_from(content, [unused])

    def record(self, attempt: Attempt, prepared: SiteRequest, result: GeneratedSite) -> None:
        answer = result.answer
        usage = answer.usage
        try:
            with transaction.atomic():  # a savepoint: a refused insert leaves the job's transaction usable
                site = Site.objects.create(
                    public_id=result.public_id, lead_id=prepared.lead_id, job_id=attempt.job_id,
                    design=prepared.design, content=answer.content.as_json(), html=result.html,
                    model=settings.ANTHROPIC_MODEL, mock=answer.mock, api_requests=len(answer.requests),
                    input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                    cache_write_tokens=usage.cache_write_tokens, cache_read_tokens=usage.cache_read_tokens,
                    cost_usd=answer.cost, duration_ms=result.duration_ms,
                )
        except IntegrityError:
            # This job's (or this lead's) site is already recorded: a success, not a second row.
            logger.info("job %s: the site of lead %s was already recorded", attempt.job_id, prepared.lead_id)
            return
        # The requests behind the site are its cost; a late attempt's rollback leaves them unused again.
        AiRequest.objects.filter(pk__in=answer.requests, site__isnull=True).update(site=site)
        # The outreach email with the site's link, in the transaction that records the site: both or neither.
        queue_outreach(prepared.lead_id, site.public_url)
        transaction.on_commit(lambda: log_cost_lines(site))
