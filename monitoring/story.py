"""A job's story: every attempt (its start slot, start, worker, duration, outcome and error), Celery's
stored result, its dead-letter entry, and the rows it was about or made (the submission and lead, the
site, the email message, the delivery step), each with its admin page.

The ledger's job page (workers.admin.JobAdmin) links here; the lead, site, message, submission and
dead-letter pages link back. It lives in monitoring because it reads every app's rows, which the
runtime (workers/) must not import. Each part is shown only to a person allowed to view its model.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django_celery_results.models import TaskResult

from delivery.models import DeliveryStep
from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead, LeadSubmission
from monitoring.search import admin_url
from resilience.redaction import redact_text
from sites.models import Site
from workers.models import Job

RESULT_PERMISSION = "django_celery_results.view_taskresult"


@dataclass(frozen=True)
class Attempt:
    number: int
    slot_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    worker: str
    outcome: str
    error: str

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Row:
    kind: str
    label: str
    url: str
    relation: str  # "made by this job" or "named in its payload"


@dataclass
class Story:
    job: Job
    attempts: list[Attempt]
    result: TaskResult | None = None
    result_allowed: bool = False
    dead_letter: DeadLetter | None = None
    dead_letter_allowed: bool = False
    rows: list[Row] = field(default_factory=list)
    hidden_kinds: list[str] = field(default_factory=list)


def attempts(job: Job) -> list[Attempt]:
    """Failed attempts from JobFailure, and the job's own latest attempt when no failure row is it
    (a success, or one still running). Errors redacted again on the way out: they were redacted when
    recorded, and a secret configured since is kept out too."""
    found = [Attempt(f.attempt, f.slot_at, f.started_at, f.failed_at, f.worker,
                     "rejected (its input)" if f.rejected else "failed", redact_text(f.error))
             for f in job.failures.order_by("attempt", "failed_at")]
    if job.started_at and not any(a.number == job.attempts for a in found):
        outcome = {Job.State.SUCCEEDED: "succeeded", Job.State.RUNNING: "running"}.get(job.state, job.state)
        found.append(Attempt(job.attempts, job.slot_at, job.started_at,
                             job.finished_at if job.state == Job.State.SUCCEEDED else None,
                             job.worker, outcome, ""))
    return found


def _payload_id(job: Job, key: str) -> Any:
    value = job.payload.get(key) if isinstance(job.payload, dict) else None
    return value if isinstance(value, (int, str)) else None


def job_story(job: Job, user: AbstractBaseUser) -> Story:
    story = Story(job=job, attempts=attempts(job))
    if user.has_perm(RESULT_PERMISSION):
        story.result_allowed = True
        # The task id IS the job id (workers.dispatcher.publish).
        story.result = TaskResult.objects.filter(task_id=str(job.id)).first()
    if user.has_perm("dlq.view_deadletter"):
        story.dead_letter_allowed = True
        story.dead_letter = DeadLetter.objects.filter(job_id=str(job.id)).order_by("-failed_at").first()

    def add(kind: str, permission: str, rows: list[tuple[Any, str]], label) -> None:
        if not user.has_perm(permission):
            story.hidden_kinds.append(kind)
            return
        seen = set()
        for row, relation in rows:
            if row.pk not in seen:
                seen.add(row.pk)
                story.rows.append(Row(kind, label(row), admin_url(row), relation))

    made, named = "made by this job", "named in its payload"
    submission_id, lead_id = _payload_id(job, "submission_id"), _payload_id(job, "lead_id")
    message_id, step_id = _payload_id(job, "message_id"), _payload_id(job, "step_id")

    submissions = list(LeadSubmission.objects.filter(
        Q(job_id=job.id) | Q(pk=submission_id if str(submission_id).isdigit() else None)).select_related("lead"))
    add("lead submission", "leads.view_leadsubmission", [(s, made if s.job_id == job.id else named)
                                                         for s in submissions],
        lambda s: f"submission {s.pk} ({s.status})")
    leads = [(s.lead, made) for s in submissions if s.lead is not None]
    if str(lead_id).isdigit():
        leads += [(lead, named) for lead in Lead.objects.filter(pk=lead_id)]
    sites = list(Site.objects.filter(job_id=job.id).select_related("lead").defer("html", "content"))
    leads += [(site.lead, "its site's lead") for site in sites if site.lead is not None]
    messages = list(Message.objects.filter(Q(job_id=job.id) | Q(pk=_uuid(message_id)))
                    .select_related("lead").defer("text_body", "html_body"))
    steps = list(DeliveryStep.objects.filter(Q(job_id=job.id) | Q(pk=step_id if str(step_id).isdigit() else None))
                 .select_related("run__lead"))
    leads += [(m.lead, "its message's lead") for m in messages if m.lead is not None]
    leads += [(s.run.lead, "its delivery's lead") for s in steps]
    add("lead", "leads.view_lead", leads, lambda lead: f"{lead.email} ({lead.status}, score {lead.score})")
    add("site", "sites.view_site", [(s, made) for s in sites], lambda s: f"{s.public_id} ({s.status})")
    add("email message", "emails.view_message", [(m, made if m.job_id == job.id else named) for m in messages],
        lambda m: f"{m.kind} to {m.to_email} ({m.status})")
    add("delivery step", "delivery.view_deliveryrun", [(s.run, made if s.job_id == job.id else named) for s in steps],
        lambda run: f"delivery run {run.pk} of {run.lead.email} ({run.state})")
    return story


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
