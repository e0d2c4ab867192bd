"""What leads' retention prunes (registered with the runtime in LeadsConfig.ready): raw submissions
after SUBMISSION_RETENTION_DAYS, except one that an unfinished job or an unresolved dead-letter entry
still needs (a requeue processes its submission again), and webhook idempotency keys after their
window (else a quiet webhook keeps them). Leads themselves are business data: never pruned."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import CharField, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Now

from dlq.models import DeadLetter
from leads import idempotency
from leads.models import LeadSubmission
from workers.models import Job
from workers.retention import delete_slice


def prunable_submissions(cutoff) -> QuerySet:
    open_jobs = Job.objects.exclude(state__in=Job.FINISHED_STATES)
    unresolved = DeadLetter.objects.filter(resolved=False)
    # A submission is tied to its job both ways (submission.job_id, job.payload.submission_id): honour both.
    needed_by_id = open_jobs.values("id")
    needed_by_payload = open_jobs.annotate(sid=KT("payload__submission_id")).filter(sid__isnull=False).values("sid")
    dead_job_ids = unresolved.filter(job_id__isnull=False).values("job_id")
    dead_payload = unresolved.annotate(sid=KT("job_data__submission_id")).filter(sid__isnull=False).values("sid")
    return (
        LeadSubmission.objects.filter(received_at__lt=cutoff)
        .annotate(id_text=Cast("id", CharField()), job_text=Cast("job_id", CharField()))
        .exclude(job_id__in=needed_by_id)
        .exclude(id_text__in=needed_by_payload)
        # (a NULL job_id must not reach NOT IN, which would then be unknown and hide the row)
        .exclude(Q(job_id__isnull=False) & Q(job_text__in=dead_job_ids))
        .exclude(id_text__in=dead_payload)
    )


def prune_submissions(limit: int) -> int:
    return delete_slice(prunable_submissions(Now() - timedelta(days=settings.SUBMISSION_RETENTION_DAYS)), limit)


def prune_idempotency_keys(limit: int) -> int:
    # One indexed delete of the expired keys; `limit` does not apply (the webhook prunes them too).
    return idempotency.prune_expired()
