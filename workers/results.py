"""Celery's result of each task, stored by django-celery-results (CELERY_RESULT_BACKEND), in one
statement instead of five.

django-celery-results stores a result through its manager's public `store_result` with get_or_create:
a SELECT, then BEGIN, INSERT, COMMIT (and an UPDATE for a job's later attempt, whose task id is the
same job id). Measured on the ledger path, that was more round trips per job than the job's own claim
and completion. Its backend is used as it is, building the row's fields itself; only the manager it
stores through is ours (on a proxy of its model, the same table), and writes those fields with one
INSERT ... ON CONFLICT (task_id) DO UPDATE: the same row, the same fields; date_created kept from the
first attempt, date_done now.
"""
from __future__ import annotations

from django.db import connections
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.managers import TaskResultManager
from django_celery_results.models import TaskResult

from workers.sql import NO_FSYNC

_FIELDS = ("task_id", "periodic_task_name", "task_name", "task_args", "task_kwargs", "status", "worker",
           "content_type", "content_encoding", "result", "traceback", "meta")
_TABLE = TaskResult._meta.db_table

# Celery's result is a copy of what the ledger records durably: its commit need not wait for the disk
# (workers.sql.NO_FSYNC). date_started is set when the backend asks for it (a STARTED state), else kept.
_UPSERT_SQL = NO_FSYNC + (
    f"INSERT INTO {_TABLE} ({', '.join(_FIELDS)}, date_created, date_started, date_done)"
    f" VALUES ({', '.join('%s' for _ in _FIELDS)}, statement_timestamp(),"
    f" CASE WHEN %s THEN statement_timestamp() END, statement_timestamp())"
    f" ON CONFLICT (task_id) DO UPDATE SET {', '.join(f'{f} = EXCLUDED.{f}' for f in _FIELDS[1:])},"
    f" date_started = COALESCE(EXCLUDED.date_started, {_TABLE}.date_started),"
    f" date_done = EXCLUDED.date_done"
)


class UpsertTaskResultManager(TaskResultManager):
    """django-celery-results' manager whose `store_result` is one upsert (see the module's doc)."""

    def store_result(self, content_type, content_encoding, task_id, result, status, traceback=None, meta=None,
                     periodic_task_name=None, task_name=None, task_args=None, task_kwargs=None, worker=None,
                     using=None, **kwargs) -> None:
        """The arguments of TaskResultManager.store_result, the fields it stores; returns no row
        (its one caller, DatabaseBackend._store_result, reads none)."""
        values = {"task_id": task_id, "periodic_task_name": periodic_task_name, "task_name": task_name,
                  "task_args": task_args, "task_kwargs": task_kwargs, "status": status, "worker": worker,
                  "content_type": content_type, "content_encoding": content_encoding, "result": result,
                  "traceback": traceback, "meta": meta}
        connection = connections[using] if using else self.connection_for_write()
        with connection.cursor() as cur:
            cur.execute(_UPSERT_SQL, [values[f] for f in _FIELDS] + ["date_started" in kwargs])


class StoredTaskResult(TaskResult):
    """TaskResult itself (a proxy: the same table), stored through the one-upsert manager."""

    objects = UpsertTaskResultManager()

    class Meta:
        proxy = True
        app_label = "workers"


class LedgerResultBackend(DatabaseBackend):
    """django-celery-results' database backend, storing through StoredTaskResult's manager."""

    TaskModel = StoredTaskResult
