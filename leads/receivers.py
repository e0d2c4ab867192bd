from django.dispatch import receiver
from django.utils import timezone

from resilience.redaction import redact
from leads.models import LeadSubmission
from leads.services import LEAD_TASK
from workers.signals import job_dead_lettered, job_requeued


@receiver(job_dead_lettered)
def mark_submission_failed(sender, job, entry, **kwargs) -> None:
    if job.task != LEAD_TASK:
        return
    submission_id = job.payload.get("submission_id")
    LeadSubmission.objects.filter(pk=submission_id, status=LeadSubmission.Status.RECEIVED).update(
        status=LeadSubmission.Status.FAILED, error=entry.error_message or "", processed_at=timezone.now()
    )
    # The job carries the submission's id only; the person looking at the entry needs the lead
    # itself (already redacted when it was accepted).
    lead = LeadSubmission.objects.filter(pk=submission_id).values_list("payload", flat=True).first()
    if lead is not None:
        entry.job_data = {**entry.job_data, "lead": redact(lead)}
        entry.save(update_fields=["job_data"])


@receiver(job_requeued)
def reopen_submission(sender, job, **kwargs) -> None:
    """A requeued lead job must process its submission again, which skips anything not `received`."""
    if job.task != LEAD_TASK:
        return
    LeadSubmission.objects.filter(pk=job.payload.get("submission_id"), status=LeadSubmission.Status.FAILED).update(
        status=LeadSubmission.Status.RECEIVED, error="", processed_at=None
    )
