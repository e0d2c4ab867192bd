"""Celery's own result of each execution, stored by real workers through django-celery-results under
the job's id: status, worker, start and end, and a traceback that carries no secret.

Given: a worker and a dispatcher on the delivery queue (3 attempts per job).
When: a probe that succeeds, one that fails permanently and a job whose every attempt fails with a
password and a bearer token in its error run.
Then: each job has one TaskResult row, describing its latest attempt, agreeing with the ledger.
"""
import json
import sys

import pytest
from django_celery_results.models import TaskResult

from tests.system.failing_task import SECRETS, TASK
from tests.system.processes import wait_for
from workers import ledger
from workers.models import Job
from workers.probe import PROBE_TASK, enqueue_probe

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
QUEUE = "delivery"


def test_real_workers_store_each_jobs_result_under_its_id(processes):
    name = f"{QUEUE}@primary"
    processes.start(name, [
        sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q", QUEUE, "-c", "2",
        "-n", f"{name}.%h", "--without-gossip", "--without-mingle", "-l", "info",
        "--include", "tests.system.failing_task",
    ])
    processes.dispatcher("primary")
    processes.wait_ready(name)
    good = enqueue_probe(QUEUE)
    rejected = enqueue_probe(QUEUE, fail="permanent")
    leaky = ledger.enqueue(QUEUE, TASK, {})
    jobs = [good, rejected, leaky]
    ids = [str(job.id) for job in jobs]
    assert wait_for(lambda: Job.objects.filter(id__in=ids, state__in=["succeeded", "dead"]).count() == 3, 60), \
        processes.logs()
    # Celery writes its result after the ledger's outcome commits (the leaky job's row may still show
    # its second attempt for a moment): wait until each row shows the last one.
    def final() -> bool:
        rows = TaskResult.objects.filter(task_id__in=ids)
        return (rows.filter(status="SUCCESS").count() == 1 and rows.filter(status="FAILURE").count() == 2
                and rows.filter(task_id=str(leaky.id), traceback__contains="job is now dead").exists())

    assert wait_for(final, 20), (list(TaskResult.objects.filter(task_id__in=ids).values()), processes.logs())

    results = {row.task_id: row for row in TaskResult.objects.filter(task_id__in=ids)}
    ok, refused, leaked = (results[str(job.id)] for job in jobs)
    assert (ok.status, json.loads(ok.result), ok.task_name) == ("SUCCESS", "succeeded", PROBE_TASK)
    assert ok.worker.startswith(f"{QUEUE}@primary.")
    assert json.loads(ok.meta)["runtime_seconds"] > 0  # measured by the task: the runtime the admin shows
    assert json.loads(ok.task_args).startswith(f"['{good.id}', ")  # extended: (job id, dispatch token)
    assert refused.status == "FAILURE" and "JobAttemptFailed" in refused.traceback
    assert "probe asked to fail permanently" in refused.traceback

    # Three attempts, one row (the task id is reused): it describes the last attempt.
    leaky_job = Job.objects.get(id=leaky.id)
    assert (leaky_job.state, leaky_job.attempts) == ("dead", 3)
    assert TaskResult.objects.filter(task_id=str(leaky.id)).count() == 1
    # Attempts 1 and 2 failed with "job is now retry"; only the last one says dead.
    assert leaked.status == "FAILURE" and "job is now dead" in leaked.traceback
    assert "job is now dead" in json.loads(leaked.result)["exc_message"][0]
    for text in (leaked.traceback, leaked.result, leaked.task_args, leaked.meta):
        for secret in SECRETS:
            assert secret not in (text or ""), text
    assert "[redacted]" in leaked.traceback

    # A stale copy of the finished job's message (a redelivery) is skipped, and leaves the stored
    # result of the run that did the work as it was.
    from workers.dispatcher import publish
    from workers.ledger import Dispatch

    done = Job.objects.get(id=good.id)
    publish(Dispatch(str(done.id), done.task, QUEUE, done.dispatch_token))
    assert wait_for(lambda: f"job {done.id} token {done.dispatch_token}: already claimed" in
                    processes.logs(400), 20), processes.logs()
    again = TaskResult.objects.get(task_id=str(done.id))
    assert (again.status, json.loads(again.result), again.date_done) == ("SUCCESS", "succeeded", ok.date_done)
