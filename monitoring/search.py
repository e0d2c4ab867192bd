"""The operator's search: one box that finds leads, jobs, dead letters, sites, email messages and
delivery steps by what they are about (an email, a domain, a company, a site's public id, a message
id, a job id), and, from a lead, everything it led to.

Each kind is looked up only for a person allowed to view its model, and only that person's kinds lead
on to others: a staff user who may not view leads finds no lead, and no job through a lead either.

Every lookup is an equality (or IN) on an indexed column or expression (the `*_idx` indexes of each
app's models, migrations leads 0005, emails 0005, dlq 0003, delivery 0003), at most PER_KIND rows a
kind, in a fixed number of queries whatever the size of the tables: tests/monitoring/test_search.py
counts them and reads the plans.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.db.models.fields.json import KT
from django.db.models.functions import Lower
from django.urls import reverse

from delivery.models import DeliveryStep
from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead, LeadSubmission
from leads.services import InvalidLead, normalize_domain, normalize_email
from sites.models import Site
from sites.services import site_generation_key
from workers.models import Job

PER_KIND = 50
MAX_QUERY_CHARS = 320
# <msg-UUID@domain>, the Message-ID header our mail carries (emails.models.Message.message_id_header).
_MESSAGE_ID_HEADER = re.compile(r"<?msg-([0-9a-f-]{36})@[^>\s]*>?", re.IGNORECASE)

PERMISSIONS = {
    "leads": "leads.view_lead",
    "submissions": "leads.view_leadsubmission",
    "jobs": "workers.view_job",
    "dead_letters": "dlq.view_deadletter",
    "sites": "sites.view_site",
    "messages": "emails.view_message",
    "steps": "delivery.view_deliveryrun",
}


@dataclass(frozen=True)
class Terms:
    """What a query can mean: each search uses the parts that are set."""

    text: str
    email: str | None = None
    domain: str | None = None
    company: str | None = None
    uuid: uuid.UUID | None = None
    number: int | None = None
    public_id: str | None = None


def parse(query: str) -> Terms:
    text = query.strip()[:MAX_QUERY_CHARS]
    if not text:
        return Terms(text="")
    found: dict[str, Any] = {}
    header = _MESSAGE_ID_HEADER.fullmatch(text)
    try:
        found["uuid"] = uuid.UUID(header.group(1) if header else text)
    except ValueError:
        pass
    if "uuid" not in found:
        if "@" in text:
            try:
                found["email"] = normalize_email(text)
            except InvalidLead:
                found["email"] = text.lower()  # a refused lead's address is kept as it was sent
        elif text.isascii() and text.isdigit() and len(text) < 18:
            found["number"] = int(text)
        else:
            if text.lower().startswith("site_"):
                found["public_id"] = text.lower()
            if "." in text and (domain := normalize_domain(text)):
                found["domain"] = domain
            found["company"] = text.lower()
    return Terms(text=text, **found)


@dataclass
class Results:
    terms: Terms
    leads: list[Lead] = field(default_factory=list)
    submissions: list[LeadSubmission] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    steps: list[DeliveryStep] = field(default_factory=list)
    # The kinds this person may see: the page says which it did not look in.
    allowed: frozenset[str] = frozenset()

    @property
    def count(self) -> int:
        return sum(len(getattr(self, kind)) for kind in PERMISSIONS)


def _any(conditions: list[Q]) -> Q | None:
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined |= condition
    return combined


def search(query: str, user: AbstractBaseUser) -> Results:
    terms = parse(query)
    allowed = frozenset(kind for kind, permission in PERMISSIONS.items() if user.has_perm(permission))
    results = Results(terms=terms, allowed=allowed)
    if not terms.text:
        return results
    t = terms

    lead_ids: list[int] = []
    if "leads" in allowed:
        conditions = []
        if t.email:
            conditions.append(Q(email=t.email))  # stored normalised (leads.services.normalize_email)
        if t.domain:
            conditions.append(Q(domain=t.domain))
        if t.company:
            conditions.append(Q(company_lower=t.company))
        if t.number is not None:
            conditions.append(Q(pk=t.number))
        if (where := _any(conditions)) is not None:
            results.leads = list(Lead.objects.annotate(company_lower=Lower("company")).filter(where)
                                 .order_by("-created_at")[:PER_KIND])
            lead_ids = [lead.pk for lead in results.leads]

    job_ids: set[uuid.UUID] = {t.uuid} if t.uuid else set()
    job_keys: list[str] = [site_generation_key(lead_id) for lead_id in lead_ids]

    if "submissions" in allowed:
        conditions = []
        if t.email:
            conditions.append(Q(email_lower=t.email))
        if t.uuid:
            conditions.append(Q(job_id=t.uuid))
        if lead_ids:
            conditions.append(Q(lead_id__in=lead_ids))
        if (where := _any(conditions)) is not None:
            results.submissions = list(LeadSubmission.objects.annotate(email_lower=Lower(KT("payload__email")))
                                       .filter(where).order_by("-received_at")[:PER_KIND])
            job_ids |= {s.job_id for s in results.submissions if s.job_id}
            job_keys += [f"lead-submission:{s.pk}" for s in results.submissions]

    if "sites" in allowed:
        conditions = []
        if t.public_id:
            conditions.append(Q(public_id=t.public_id))
        if t.uuid:
            conditions.append(Q(job_id=t.uuid))
        if t.number is not None:
            conditions.append(Q(pk=t.number))
        if lead_ids:
            conditions.append(Q(lead_id__in=lead_ids))
        if (where := _any(conditions)) is not None:
            results.sites = list(Site.objects.filter(where).select_related("lead").defer("html", "content",
                                                                                          "lead__phone")
                                 .order_by("-created_at")[:PER_KIND])
            job_ids |= {site.job_id for site in results.sites}

    if "messages" in allowed:
        conditions = []
        if t.email:
            conditions.append(Q(to_lower=t.email))
        if t.uuid:
            conditions.append(Q(pk=t.uuid) | Q(job_id=t.uuid))
        if not t.uuid and not t.email and t.text:
            # A provider's id for a message (its events name it): partial index on the non-empty ones.
            conditions.append(Q(provider_message_id=t.text) & ~Q(provider_message_id=""))
        if lead_ids:
            conditions.append(Q(lead_id__in=lead_ids))
        if (where := _any(conditions)) is not None:
            results.messages = list(Message.objects.annotate(to_lower=Lower("to_email")).filter(where)
                                    .defer("text_body", "html_body").order_by("-created_at")[:PER_KIND])
            job_ids |= {m.job_id for m in results.messages if m.job_id}

    if "steps" in allowed:
        conditions = []
        if t.uuid:
            conditions.append(Q(job_id=t.uuid))
        if lead_ids:
            conditions.append(Q(run__lead_id__in=lead_ids))
        if (where := _any(conditions)) is not None:
            results.steps = list(DeliveryStep.objects.filter(where).select_related("run")
                                 .order_by("run_id", "position")[:PER_KIND])
            job_ids |= {s.job_id for s in results.steps if s.job_id}

    if "jobs" in allowed and (job_ids or job_keys):
        where = Q(pk__in=job_ids) if job_ids else Q(idempotency_key__in=job_keys)
        if job_ids and job_keys:
            where |= Q(idempotency_key__in=job_keys)
        results.jobs = list(Job.objects.filter(where).defer("payload", "last_error")
                            .order_by("-created_at")[:PER_KIND])
        job_ids |= {job.pk for job in results.jobs}

    if "dead_letters" in allowed and job_ids:
        where = Q(job_id__in=[str(job_id) for job_id in job_ids])
        if t.uuid:
            where |= Q(pk=t.uuid)
        results.dead_letters = list(DeadLetter.objects.filter(where).defer("job_data", "error_stack")
                                    .order_by("-failed_at")[:PER_KIND])
    return results


# --- links --------------------------------------------------------------------------------------

def story_url(job_id: Any) -> str | None:
    try:
        return reverse("job-story", args=[uuid.UUID(str(job_id))])
    except (TypeError, ValueError):
        return None  # no job, or not a ledger job id


def admin_url(row: Any) -> str:
    return reverse(f"admin:{row._meta.app_label}_{row._meta.model_name}_change", args=[row.pk])
