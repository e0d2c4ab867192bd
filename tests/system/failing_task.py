"""A ledger task whose every attempt fails with secrets in its error, loaded into a test's worker with
`celery worker --include tests.system.failing_task`: what Celery then stores must not carry them."""
from resilience.celery import app
from workers.models import Job
from workers.runner import run_job

TASK = "tests.fail_with_secrets"
SECRETS = ("s3cr3t-db-password", "abcdefghijklmnopqrstuvwx")


def _fail(job: Job) -> None:
    raise ConnectionError(f"could not reach postgres://app:{SECRETS[0]}@db.internal:5432/app "
                          f"(Authorization: Bearer {SECRETS[1]})")


@app.task(name=TASK, bind=True)
def fail_with_secrets(self, job_id: str, dispatch_token: int) -> str:
    return run_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", handler=_fail)
