"""Writing to the dead-letter queue."""
from __future__ import annotations

from typing import Any

from dlq.models import DeadLetter
from resilience.redaction import redact, redact_text

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
