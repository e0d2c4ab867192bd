from celery import shared_task

from emails.sending import EmailWork
from emails.services import SEND_TASK
from workers.outside import run_outside_job


@shared_task(name=SEND_TASK, bind=True)
def send_message(self, job_id: str, dispatch_token: int) -> str:
    return run_outside_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", work=EmailWork())
