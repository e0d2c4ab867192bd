from celery import shared_task

from leads import services
from workers.models import Job
from workers.runner import run_job


def _process(job: Job) -> None:
    services.process_submission(job.payload["submission_id"])


@shared_task(name=services.LEAD_TASK, bind=True)
def process_lead(self, job_id: str, dispatch_token: int) -> str:
    return run_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", handler=_process)
