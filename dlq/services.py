"""Writing to the dead-letter queue."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models.functions import Coalesce, Now

from dlq.models import DeadLetter
from resilience.redaction import redact, redact_text
from workers.retention import delete_slice

_MAX_TEXT = 20_000


def record_dead_letter(*, queue_name: str, job_id: str, job_data: dict[str, Any], error_message: str,
                       error_stack: str, attempts_made: int) -> DeadLetter:
    """Store a failed job for people to inspect; secrets are redacted before they reach the table."""
    return DeadLetter.objects.create(
        queue_name=queue_name,
        job_id=job_id,
        job_data=redact(job_data),
        error_message=redact_text(error_message)[:_MAX_TEXT],
        error_stack=redact_text(error_stack)[-_MAX_TEXT:],
        attempts_made=attempts_made,
    )


# --- retention (registered with the runtime in DlqConfig.ready) -----------------------------------

def unresolved_job_ids():
    """Jobs the ledger must keep: requeueing an unresolved entry needs its job's row."""
    return DeadLetter.objects.filter(resolved=False, job_id__isnull=False).values("job_id")


def prune_resolved(limit: int) -> int:
    """Up to `limit` entries resolved more than DLQ_RESOLVED_RETENTION_DAYS ago; returns how many went.
    resolved_at is set by every way of resolving; failed_at stands in for a row resolved without it."""
    cutoff = Now() - timedelta(days=settings.DLQ_RESOLVED_RETENTION_DAYS)
    return delete_slice(DeadLetter.objects.filter(resolved=True)
                        .alias(done_at=Coalesce("resolved_at", "failed_at")).filter(done_at__lt=cutoff), limit)
