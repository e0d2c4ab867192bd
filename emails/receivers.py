from django.db.models.functions import Now
from django.dispatch import receiver

from emails.models import Message
from emails.services import SEND_TASK
from workers.signals import job_dead_lettered, job_requeued


@receiver(job_dead_lettered)
def settle_dead_message(sender, job, entry, **kwargs) -> None:
    """The send job gave up (attempts exhausted, or its worker died on the last one). A message still
    `pending` was never taken by a server: failed. One still `sending` may have been: unknown."""
    if job.task != SEND_TASK:
        return
    mine = Message.objects.filter(pk=job.payload.get("message_id"))
    mine.filter(status=Message.Status.PENDING).update(status=Message.Status.FAILED, updated_at=Now())
    mine.filter(status=Message.Status.SENDING).update(status=Message.Status.UNKNOWN, updated_at=Now())


@receiver(job_requeued)
def reopen_failed_message(sender, job, **kwargs) -> None:
    """A send job requeued from the dead-letter queue sends its failed message again (a bounced
    address is still skipped when the job runs)."""
    if job.task != SEND_TASK:
        return
    Message.objects.filter(pk=job.payload.get("message_id"), status=Message.Status.FAILED).update(
        status=Message.Status.PENDING, updated_at=Now())
