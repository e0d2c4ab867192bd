from __future__ import annotations

from django.db.models.functions import Now

from emails.sending import EmailWork
from emails.services import EMAIL_QUEUE
from leads.models import Lead
from workers import ledger
from workers.models import Job
from workers.outside import run_outside_job


def make_lead(email: str, **fields) -> Lead:
    defaults = dict(first_name="Jane", last_name="Doe", company="Acme", status=Lead.Status.QUALIFIED, score=80)
    return Lead.objects.create(email=email, **{**defaults, **fields})


def run_due_email_jobs(rounds: int = 5) -> list[str]:
    """Run every due email-sending job in this process as a worker would, retries made due at once."""
    results = []
    for _ in range(rounds):
        Job.objects.filter(queue=EMAIL_QUEUE, state=Job.State.RETRY).update(next_attempt_at=Now())
        due = ledger.take_due_jobs(EMAIL_QUEUE, 500)
        if not due:
            break
        for dispatch in due:
            results.append(run_outside_job(dispatch.job_id, dispatch.token, worker="test-worker", work=EmailWork()))
    return results


def run_once() -> list[str]:
    return run_due_email_jobs(rounds=1)
