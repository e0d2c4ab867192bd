"""Lead processing: normalise, score, deduplicate, store. Plain functions, testable without a broker."""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from resilience.redaction import redact
from leads.fields import EMPLOYEE_COUNT_MAX, pick
from leads.models import Lead, LeadSubmission
from leads.signals import lead_qualified
from resilience.text import visible_text
from workers import ledger
from workers.errors import InvalidData, MissingResource

LEAD_QUEUE = "lead-processing"
LEAD_TASK = "leads.process_lead"

FREE_EMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "hotmail.com", "outlook.com", "live.com",
    "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "gmx.com",
    "gmx.de", "web.de", "mail.com", "yandex.com", "yandex.ru", "zoho.com", "fastmail.com", "hey.com",
})
ROLE_LOCAL_PARTS = frozenset({
    "info", "sales", "contact", "hello", "admin", "support", "office", "team", "marketing", "noreply",
    "no-reply", "billing", "help", "enquiries", "inquiries",
})
_SENIOR_TITLE = re.compile(r"\b(ceo|cto|cfo|coo|cmo|chief|founder|co-founder|cofounder|owner|president|partner)\b", re.I)
_DIRECTOR_TITLE = re.compile(r"\b(vp|vice president|director|head)\b", re.I)
_MANAGER_TITLE = re.compile(r"\b(manager|lead)\b", re.I)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{2,59})$")


class InvalidLead(InvalidData):
    """The lead cannot be stored as it is: it goes to the dead-letter queue with its data."""


@dataclass(frozen=True)
class NormalizedLead:
    email: str
    first_name: str = ""
    last_name: str = ""
    title: str = ""
    company: str = ""
    domain: str = ""
    website: str = ""
    phone: str = ""
    linkedin_url: str = ""
    industry: str = ""
    employee_count: int | None = None
    country: str = ""


# --- normalisation -------------------------------------------------------------------------------

def _text(value: Any) -> str:
    # Bidi and zero-width characters go: a name is shown in the admin, in emails and in their headers.
    return visible_text(str(value)) if value is not None else ""


def normalize_name(value: Any) -> str:
    name = _text(value)
    if name and (name.islower() or name.isupper()):
        # "JANE" / "jane o'neil" -> "Jane" / "Jane O'Neil"; mixed case (McDonald) is kept as sent.
        name = "-".join(part.title() for part in name.split("-"))
    return name


def normalize_domain(value: Any) -> str:
    """'https://www.Acme.io/about' -> 'acme.io'; '' if it is not a usable domain."""
    text = _text(value).lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].split("@")[-1].split(":", 1)[0].strip(".")
    if text.startswith("www."):
        text = text[4:]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return text if _DOMAIN.match(text) else ""


def normalize_email(value: Any) -> str:
    email = _text(value).lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:"):]
    local, sep, domain = email.rpartition("@")
    if not sep or not local:
        raise InvalidLead(f"email {value!r} is not an email address")
    ascii_domain = normalize_domain(domain)
    if not ascii_domain:
        raise InvalidLead(f"email {value!r} has no valid domain")
    email = f"{local}@{ascii_domain}"
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidLead(f"email {value!r} is not a valid email address") from None
    return email


def normalize_phone(value: Any) -> str:
    text = _text(value)
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15:
        return ""
    return ("+" if text.startswith(("+", "00")) else "") + digits.removeprefix("00" if text.startswith("00") else "")


def normalize_linkedin(value: Any) -> str:
    text = _text(value)
    match = re.search(r"linkedin\.com/(in|company)/([A-Za-z0-9_%\-]+)", text, re.I)
    return f"https://www.linkedin.com/{match.group(1).lower()}/{match.group(2)}" if match else ""


def normalize_employee_count(value: Any) -> int | None:
    """A whole count, or None when there is none or it cannot be one (negative, beyond the column)."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        match = re.search(r"\d[\d,]{0,40}", _text(value))
        count = int(match.group(0).replace(",", "")) if match else None
    return count if count is not None and 0 <= count <= EMPLOYEE_COUNT_MAX else None


def normalize_lead(raw: dict[str, Any]) -> NormalizedLead:
    """Clean a raw lead; raise InvalidLead if it cannot identify a person."""
    if not isinstance(raw, dict):
        raise InvalidLead("the lead is not an object")
    value = lambda field: pick(raw, field)[1]  # noqa: E731
    email = normalize_email(value("email"))
    first, last = normalize_name(value("first_name")), normalize_name(value("last_name"))
    if not (first or last):
        full = normalize_name(value("full_name"))
        first, _, last = full.partition(" ")
    website_domain = normalize_domain(value("website"))
    email_domain = email.rsplit("@", 1)[1]
    domain = website_domain or ("" if email_domain in FREE_EMAIL_DOMAINS else email_domain)
    return NormalizedLead(
        email=email,
        first_name=first[:100],
        last_name=last[:100],
        title=_text(value("title"))[:200],
        company=_text(value("company"))[:200],
        domain=domain,
        website=f"https://{website_domain}" if website_domain else "",
        phone=normalize_phone(value("phone")),
        linkedin_url=normalize_linkedin(value("linkedin_url")),
        industry=_text(value("industry"))[:200],
        employee_count=normalize_employee_count(value("employee_count")),
        country=_text(value("country"))[:100],
    )


# --- scoring -------------------------------------------------------------------------------------

def score_lead(lead: NormalizedLead) -> int:
    """Quality 0-100; the rubric is documented in docs/pipeline.md ("Lead scoring").

    email 20 (work address; 5 if free webmail; -10 if a role address like info@),
    full name 10, title 10 + seniority up to 15, company 10, company domain 10, phone 5,
    LinkedIn 5, employee count 5 + 10 when the company has 10 to 1000 people.
    """
    local, _, domain = lead.email.partition("@")
    score = 5 if domain in FREE_EMAIL_DOMAINS else 20
    if local in ROLE_LOCAL_PARTS:
        score -= 10
    if lead.first_name and lead.last_name:
        score += 10
    if lead.title:
        score += 10
        if _SENIOR_TITLE.search(lead.title):
            score += 15
        elif _DIRECTOR_TITLE.search(lead.title):
            score += 10
        elif _MANAGER_TITLE.search(lead.title):
            score += 5
    if lead.company:
        score += 10
    if lead.domain:
        score += 10
    if lead.phone:
        score += 5
    if lead.linkedin_url:
        score += 5
    if lead.employee_count is not None:
        score += 5
        if 10 <= lead.employee_count <= 1000:
            score += 10
    return max(0, min(100, score))


def status_for(score: int, min_score: int | None = None) -> str:
    threshold = settings.LEAD_MIN_SCORE if min_score is None else min_score
    return Lead.Status.QUALIFIED if score >= threshold else Lead.Status.DISQUALIFIED


# --- storing -------------------------------------------------------------------------------------

_MERGE_FIELDS = [f.name for f in fields(NormalizedLead) if f.name != "email"]


def upsert_lead(lead: NormalizedLead) -> tuple[Lead, bool]:
    """Store the lead, or merge it into the one with the same email; (lead, created).

    Race-safe: the unique email index decides which of two concurrent inserts wins, and the loser
    merges into the winner's row under its row lock. Merging fills fields the stored lead lacks;
    it never overwrites what is there.
    """
    values = asdict(lead)
    score = score_lead(lead)
    with transaction.atomic():
        row, created = Lead.objects.select_for_update().get_or_create(
            email=lead.email,
            defaults={**{k: values[k] for k in _MERGE_FIELDS}, "score": score, "status": status_for(score)},
        )
        if created:
            return row, True
        changed = []
        for name in _MERGE_FIELDS:
            if values[name] not in ("", None) and getattr(row, name) in ("", None):
                setattr(row, name, values[name])
                changed.append(name)
        merged = NormalizedLead(email=row.email, **{name: getattr(row, name) for name in _MERGE_FIELDS})
        row.score = score_lead(merged)
        row.status = status_for(row.score)
        row.times_seen += 1
        row.save(update_fields=[*changed, "score", "status", "times_seen", "updated_at"])
        return row, False


def process_submission(submission_id: int) -> LeadSubmission:
    """The lead-processing job: idempotent, so a second run of a finished submission changes nothing."""
    try:
        submission = LeadSubmission.objects.select_for_update().get(pk=submission_id)
    except LeadSubmission.DoesNotExist:
        raise MissingResource(f"lead submission {submission_id} does not exist") from None
    if submission.status != LeadSubmission.Status.RECEIVED:
        return submission
    lead, created = upsert_lead(normalize_lead(submission.payload))
    if lead.status == Lead.Status.QUALIFIED:
        # In this transaction: what the receivers do (sites: the lead's site job) exists if and only
        # if the qualification committed.
        lead_qualified.send(sender=Lead, lead=lead)
    submission.lead = lead
    submission.status = lead.status if created else LeadSubmission.Status.DUPLICATE
    submission.processed_at = timezone.now()
    submission.save(update_fields=["lead", "status", "processed_at"])
    return submission


CANCELLED_ERROR = "its job was cancelled in the ledger before it ran: the lead was never processed"


def cancel_submissions(job_ids: list[str]) -> int:
    """Their lead-processing jobs were cancelled before an attempt claimed them (workers.registry.
    on_cancel): a submission still `received` will never be processed. Returns how many were marked."""
    return LeadSubmission.objects.filter(job_id__in=job_ids, status=LeadSubmission.Status.RECEIVED).update(
        status=LeadSubmission.Status.CANCELLED, error=CANCELLED_ERROR, processed_at=timezone.now())


# --- intake --------------------------------------------------------------------------------------

def accept_leads(items: list[dict[str, Any]], *, source: str) -> list[LeadSubmission]:
    """Store raw leads and their lead-processing jobs in one transaction (the webhook's and
    generate_test_leads' one path in). Items must have passed leads.validation.

    Secrets a source put in a lead (a `password` or `api_key` column, credentials in a URL) are
    redacted here, before anything is stored, so no submission, job, admin page or log sees them.
    The job's payload holds the submission's id only: the submission is the one copy of the lead.
    """
    batch_id = uuid.uuid4()
    submissions = [
        LeadSubmission(source=source, payload=redact(item), batch_id=batch_id, job_id=uuid.uuid4())
        for item in items
    ]
    with transaction.atomic():
        LeadSubmission.objects.bulk_create(submissions)
        ledger.enqueue_many(
            LEAD_QUEUE,
            LEAD_TASK,
            [(s.job_id, {"submission_id": s.pk}, f"lead-submission:{s.pk}") for s in submissions],
        )
    return submissions
