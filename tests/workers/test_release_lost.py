"""ledger.release_lost: a worker's main process ends the attempt of a pool child that died."""
import pytest
from django.db import transaction

from dlq.models import DeadLetter
from workers import ledger
from workers.errors import LeaseLost
from workers.models import Job

pytestmark = pytest.mark.django_db
State = Job.State


def running(worker: str = "lead-processing@primary.h", **fields) -> tuple[Job, int]:
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    claimed = ledger.claim(dispatch.job_id, dispatch.token, worker)
    assert claimed is not None
    return claimed, dispatch.token


def test_the_dead_attempt_goes_back_to_pending_at_once_and_counts():
    job, token = running()
    assert ledger.release_lost(str(job.id), token, job.worker, "pool process exited") == State.PENDING
    job.refresh_from_db()
    assert (job.state, job.attempts, job.lease_expires_at) == (State.PENDING, 1, None)
    assert job.last_error.startswith("WorkerLost: pool process exited on lead-processing@primary.h")


def test_the_dead_attempt_cannot_complete_afterwards():
    job, token = running()
    ledger.release_lost(str(job.id), token, job.worker, "pool process exited")
    with pytest.raises(LeaseLost), transaction.atomic():
        ledger.complete(job)


def test_the_last_attempt_is_dead_lettered():
    job, token = running(attempts=2)
    assert job.attempts == job.max_attempts == 3
    assert ledger.release_lost(str(job.id), token, job.worker, "pool process exited") == State.DEAD
    assert Job.objects.get(pk=job.pk).state == State.DEAD
    assert DeadLetter.objects.get().error_message.startswith("WorkerLost: pool process exited")


@pytest.mark.parametrize("change", ["finished", "newer token", "other worker"])
def test_only_the_attempt_started_from_that_message_on_that_worker_is_released(change):
    job, token = running()
    worker = job.worker
    if change == "finished":
        with transaction.atomic():
            ledger.complete(job)
    elif change == "newer token":
        token -= 1  # an older message of the job, e.g. a redelivery
    else:
        worker = "lead-processing@backup.h"
    before = Job.objects.get(pk=job.pk)
    assert ledger.release_lost(str(job.id), token, worker, "pool process exited") is None
    after = Job.objects.get(pk=job.pk)
    assert (after.state, after.attempts, after.last_error) == (before.state, before.attempts, before.last_error)
