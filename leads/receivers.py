from django.dispatch import receiver
from django.utils import timezone

from leads.models import LeadSubmission
from leads.services import LEAD_TASK
from workers.signals import job_dead_lettered


@receiver(job_dead_lettered)
def mark_submission_failed(sender, job, entry, **kwargs) -> None:
    if job.task != LEAD_TASK:
        return
    LeadSubmission.objects.filter(pk=job.payload.get("submission_id"), status=LeadSubmission.Status.RECEIVED).update(
        status=LeadSubmission.Status.FAILED, error=entry.error_message or "", processed_at=timezone.now()
    )
