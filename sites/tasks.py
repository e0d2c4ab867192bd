from celery import shared_task

from sites.services import SITE_TASK
from sites.work import SiteWork
from workers.outside import run_outside_job


@shared_task(name=SITE_TASK, bind=True)
def generate_site(self, job_id: str, dispatch_token: int) -> str:
    return run_outside_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", work=SiteWork())
