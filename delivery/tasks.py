from celery import shared_task

from delivery.services import STEP_TASK, StepWork
from workers.outside import run_outside_job


@shared_task(name=STEP_TASK, bind=True)
def run_step(self, job_id: str, dispatch_token: int) -> str:
    return run_outside_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", work=StepWork())
