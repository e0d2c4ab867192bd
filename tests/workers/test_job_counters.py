"""The jobs a worker counts for its heartbeat: by the state each task returned, per queue, and in the
worker's main process through the request class (workers.worker_signals.LedgerJobRequest)."""
import pickle
from unittest import mock

import pytest
from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery.contrib.testing.mocks import TaskMessage
from celery.worker.request import create_request_cls
from django.db import OperationalError

from resilience.celery import app
from workers import job_counters, worker_signals
from workers.job_counters import JobCounters
from workers.probe import PROBE_TASK
from workers.tasks import probe
from workers.worker_signals import LedgerJobRequest

QUEUE = "lead-processing"


# --- job counters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("returned, done, failed", [
    ("'succeeded'", 1, 0),  # what the main process gets: the repr of the return value
    ("succeeded", 1, 0),
    ("'retry'", 0, 1), ("'dead'", 0, 1), ("'lost'", 0, 1),
    ("'skipped'", 0, 0), ("'deferred'", 0, 0),  # ran nothing
])
def test_a_job_counts_by_the_state_its_task_returned(returned, done, failed):
    counters = JobCounters()
    counters.count_result(QUEUE, returned)
    counts = counters.snapshot()
    assert (counts.done, counts.failed) == (done, failed)
    assert (counts.last_job_at is not None) == bool(done or failed)


def test_counts_are_kept_per_queue_and_in_total():
    counters = JobCounters()
    counters.count_result("delivery", "'succeeded'")
    counters.count_result(QUEUE, "'succeeded'")
    counters.count_failure(QUEUE)
    assert (counters.snapshot(QUEUE).done, counters.snapshot(QUEUE).failed) == (1, 1)
    assert (counters.snapshot("delivery").done, counters.snapshot("delivery").failed) == (1, 0)
    assert (counters.snapshot().done, counters.snapshot().failed) == (2, 1)
    assert counters.snapshot().last_job_at == counters.snapshot(QUEUE).last_job_at
    assert counters.snapshot("email-sending").last_job_at is None


# --- counting in the worker's main process ---------------------------------------------------------


def worker_request(queue: str = QUEUE):
    """A request as the worker builds it: Celery's per-task subclass of our request class."""
    task = app.tasks[probe.name]
    request_cls = create_request_cls(LedgerJobRequest, task, pool=mock.Mock(), hostname="w@primary.h",
                                     eventer=None, app=app)
    message = TaskMessage(PROBE_TASK, args=["00000000-0000-0000-0000-000000000000", 1])
    message.delivery_info = {"exchange": queue, "routing_key": queue}
    return request_cls(message, app=app, task=task, hostname="w@primary.h")


@pytest.fixture
def counters(monkeypatch) -> JobCounters:
    fresh = JobCounters()
    monkeypatch.setattr(job_counters, "JOBS", fresh)
    return fresh


@pytest.mark.parametrize("returned, done, failed", [("'succeeded'", 1, 0), ("'dead'", 0, 1), ("'skipped'", 0, 0)])
def test_the_worker_counts_each_result_once_in_its_queue(counters, returned, done, failed):
    request = worker_request()
    request.on_success((False, returned, 0.01))
    counts = counters.snapshot(QUEUE)
    assert (counts.done, counts.failed) == (done, failed)
    assert request.acknowledged  # Celery's own on_success still ran (acks_late)


def test_a_dead_pool_child_counts_as_failed_and_its_attempt_is_still_released(counters, monkeypatch):
    released = []
    monkeypatch.setattr(worker_signals, "release_dead_attempt", lambda request, reason: released.append(reason))
    request = worker_request()
    try:
        raise WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)")
    except WorkerLostError:
        einfo = ExceptionInfo()
    request.on_failure(einfo)
    assert (counters.snapshot(QUEUE).done, counters.snapshot(QUEUE).failed) == (0, 1)
    assert len(released) == 1 and "WorkerLostError" in released[0]


def test_a_task_that_raised_counts_once(counters):
    request = worker_request()
    try:
        raise OperationalError("the database is away")
    except OperationalError:
        einfo = ExceptionInfo()
    request.on_success((True, einfo, 0.01))  # how the pool reports a task that raised
    assert (counters.snapshot(QUEUE).done, counters.snapshot(QUEUE).failed) == (0, 1)


def test_a_rejection_is_counted_apart_from_failures():
    counters = JobCounters()
    counters.count_rejection(QUEUE)
    counters.count_failure("delivery")
    assert (counters.snapshot(QUEUE).failed, counters.snapshot(QUEUE).rejected) == (0, 1)
    assert (counters.snapshot().failed, counters.snapshot().rejected) == (1, 1)
    assert counters.snapshot(QUEUE).last_job_at is not None


def failure_as_the_pool_hands_it_over(job_id: str, token: int) -> ExceptionInfo:
    """Run the probe task as a pool child does and return what its main process receives: the
    exception info, pickled across the pool's pipe (the class of the exception kept)."""
    try:
        probe(job_id, token)
    except worker_signals.JobAttemptFailed:
        return pickle.loads(pickle.dumps(ExceptionInfo()))
    raise AssertionError("the probe did not fail")


@pytest.mark.django_db(transaction=True)  # the runner closes its connections, as in a worker
@pytest.mark.parametrize("fail, failed, rejected, raised", [
    ("invalid", 0, 1, "JobInputRejected"),  # dead-lettered for its own input: the queues table's "rejected"
    ("permanent", 1, 0, "JobAttemptFailed"),
])
def test_a_job_refused_for_its_input_counts_as_rejected_not_failed(counters, fail, failed, rejected, raised):
    """Issue 20: the dashboard's workers table showed an invalid lead as a failed job while the
    queues table said failed 0, rejected 1."""
    from workers import ledger
    from workers.probe import enqueue_probe

    enqueue_probe(QUEUE, fail=fail)
    [dispatch] = ledger.take_due_jobs(QUEUE, 1)
    einfo = failure_as_the_pool_hands_it_over(dispatch.job_id, dispatch.token)
    assert type(einfo.exception).__name__ == raised

    worker_request().on_success((True, einfo, 0.01))  # how the pool reports a task that raised
    counts = counters.snapshot(QUEUE)
    assert (counts.done, counts.failed, counts.rejected) == (0, failed, rejected)
