"""A refused lead corrected in the dead-letter admin (dlq.corrections): the webhook's fields, the webhook's
and the lead job's own rules, and the corrected lead stored on its submission, which the requeued job reads."""
from __future__ import annotations

from typing import Any

from dlq.corrections import Corrector
from dlq.models import DeadLetter
from leads.fields import ALIASES, pick
from leads.models import LeadSubmission
from leads.services import LEAD_TASK, InvalidLead, normalize_lead
from leads.validation import validate_item
from resilience.redaction import redact

FIELDS = tuple(ALIASES)


def _submission(entry: DeadLetter) -> LeadSubmission | None:
    submission_id = (entry.job_data or {}).get("submission_id")
    return LeadSubmission.objects.filter(pk=submission_id).first() if isinstance(submission_id, int) else None


def current(entry: DeadLetter) -> dict[str, Any] | None:
    submission = _submission(entry)
    return None if submission is None else dict(submission.payload)


def merge(original: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The original lead with each field set under the key the source used for it (Clay's column
    names vary); a field left blank is taken out. Fields the form does not know stay as they were."""
    lead = dict(original)
    for field, value in values.items():
        key, was = pick(lead, field)
        if key is not None and was is not None and str(was) == value.strip():
            continue  # unchanged (a number shown as text in the form stays a number)
        if value.strip():
            lead[key or field] = value.strip()
        elif key is not None:
            del lead[key]
    return lead


def values(lead: dict[str, Any]) -> dict[str, Any]:
    return {field: pick(lead, field)[1] for field in FIELDS}


def problems(lead: dict[str, Any]) -> list[str]:
    """What the webhook would refuse (leads.validation), then what the lead job would (normalize_lead)."""
    found = [f"{error.field or 'lead'}: {error.message}" for error in validate_item(lead, 0)]
    if not found:
        try:
            normalize_lead(lead)
        except InvalidLead as exc:
            found.append(str(exc))
    return found


def store(entry: DeadLetter, lead: dict[str, Any]) -> str:
    submission = _submission(entry)
    if submission is None:
        raise LookupError("the lead's submission no longer exists (pruned?)")
    LeadSubmission.objects.filter(pk=submission.pk).update(payload=redact(lead))
    return f"lead submission {submission.pk}"


LEAD_CORRECTOR = Corrector(task=LEAD_TASK, fields=FIELDS, current=current, problems=problems, store=store,
                           merge=merge, values=values)
