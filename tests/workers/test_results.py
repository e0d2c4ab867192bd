"""Celery's result of each task, stored in one upsert (workers.results) with the same fields as
django-celery-results' own backend."""
import pytest
from celery import states
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import TaskResult

from resilience.celery import app
from workers.results import LedgerResultBackend

pytestmark = pytest.mark.django_db(transaction=True)

COMPARED = ("status", "result", "traceback", "meta", "content_type", "content_encoding", "task_name", "task_args",
            "task_kwargs", "worker", "periodic_task_name")


class Request:
    id = "ignored"
    task = "workers.probe"
    argsrepr = "['job-1', 3]"
    kwargsrepr = "{}"
    hostname = "lead-processing+delivery@primary.h"
    children = []
    group = None
    chord = None
    meta = {"runtime_seconds": 0.25}
    ignore_result = False


def stored(backend, task_id: str, **kwargs) -> dict:
    backend.store_result(task_id, request=Request(), **kwargs)
    row = TaskResult.objects.get(task_id=task_id)
    return {f: getattr(row, f) for f in COMPARED}


def test_the_row_is_the_one_django_celery_results_writes():
    ours, theirs = LedgerResultBackend(app=app), DatabaseBackend(app=app)
    assert stored(ours, "a", result="succeeded", state=states.SUCCESS) == \
        stored(theirs, "b", result="succeeded", state=states.SUCCESS)
    failure = ValueError("attempt failed, job is now retry")
    assert stored(ours, "c", result=failure, state=states.FAILURE, traceback="Traceback ...") == \
        stored(theirs, "d", result=failure, state=states.FAILURE, traceback="Traceback ...")


def test_a_later_attempt_of_the_same_job_updates_its_row_and_keeps_when_it_was_created():
    backend = LedgerResultBackend(app=app)
    backend.store_result("job-1", "retry", states.FAILURE, request=Request())
    first = TaskResult.objects.get(task_id="job-1")
    backend.store_result("job-1", "succeeded", states.SUCCESS, request=Request())
    [row] = TaskResult.objects.filter(task_id="job-1")
    assert (row.status, row.result) == (states.SUCCESS, '"succeeded"')
    assert row.date_created == first.date_created and row.date_done >= first.date_done
    assert row.meta == first.meta and "runtime_seconds" in row.meta


def test_the_app_stores_results_through_it():
    assert isinstance(app.backend, LedgerResultBackend)
