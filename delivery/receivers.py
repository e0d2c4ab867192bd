from django.dispatch import receiver

from delivery import services
from workers.signals import job_dead_lettered, job_requeued


@receiver(job_dead_lettered)
def fail_run_at_step(sender, job, entry, **kwargs) -> None:
    if job.task == services.STEP_TASK:
        services.fail_run_at_step(job.payload.get("step_id"), entry)


@receiver(job_requeued)
def resume_run_at_step(sender, job, **kwargs) -> None:
    """A requeued step job must run its step again, which prepare() refuses for nothing but `done`;
    the run shows running again, at that step."""
    if job.task == services.STEP_TASK:
        services.resume_run_at_step(job.payload.get("step_id"))
