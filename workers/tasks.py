from celery import shared_task

from workers.probe import PROBE_TASK, run_probe
from workers.runner import run_job


@shared_task(name=PROBE_TASK, bind=True)
def probe(self, job_id: str, dispatch_token: int) -> str:
    return run_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", handler=run_probe)
