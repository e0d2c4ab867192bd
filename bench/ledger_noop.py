"""The ledger side of the speed bench: a job whose handler does what plain Celery's task does (one
INCR on the worker's shared Redis connection), run through the whole ledger path (dispatcher,
claim, start slot, lease, completion, Celery's stored result). The worker loads it with
`-I bench.ledger_noop`."""
from __future__ import annotations

from resilience.celery import app
from workers.models import Job
from workers.redis_client import shared_client
from workers.runner import run_job

TASK = "bench.ledger_noop"
COUNTER = "resilience:bench:ledger-done"


def count(job: Job) -> None:
    shared_client().incr(COUNTER)


@app.task(name=TASK, bind=True)
def ledger_noop(self, job_id: str, dispatch_token: int) -> str:
    return run_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", handler=count)
