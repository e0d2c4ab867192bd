"""Celery's result of each task, stored by django-celery-results (CELERY_RESULT_BACKEND), in one
statement instead of five.

django-celery-results stores a result with get_or_create: a SELECT, then BEGIN, INSERT, COMMIT (and
an UPDATE for a job's later attempt, whose task id is the same job id). Measured on the ledger path,
that was more round trips per job than the job's own claim and completion. This backend builds the
row exactly as django-celery-results 2.6 does (its _store_result) and writes it with one INSERT ...
ON CONFLICT (task_id) DO UPDATE: the same row, the same fields; date_created kept from the first
attempt, date_done now.
"""
from __future__ import annotations

from celery import states
from django.db import connection
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import TaskResult

from workers.ledger import NO_FSYNC

_FIELDS = ("task_id", "periodic_task_name", "task_name", "task_args", "task_kwargs", "status", "worker",
           "content_type", "content_encoding", "result", "traceback", "meta")

# Celery's result is a copy of what the ledger records durably: its commit need not wait for the disk
# (workers.ledger.NO_FSYNC).
_UPSERT_SQL = NO_FSYNC + (
    f"INSERT INTO {TaskResult._meta.db_table} ({', '.join(_FIELDS)}, date_created, date_started, date_done)"
    f" VALUES ({', '.join('%s' for _ in _FIELDS)}, statement_timestamp(), %s, statement_timestamp())"
    f" ON CONFLICT (task_id) DO UPDATE SET {', '.join(f'{f} = EXCLUDED.{f}' for f in _FIELDS[1:])},"
    f" date_started = COALESCE(EXCLUDED.date_started, {TaskResult._meta.db_table}.date_started),"
    f" date_done = EXCLUDED.date_done"
)


def upsert_result(props: dict) -> None:
    started = timezone.now() if props.get("status") == states.STARTED else None
    with connection.cursor() as cur:
        cur.execute(_UPSERT_SQL, [props.get(f) for f in _FIELDS] + [started])


class LedgerResultBackend(DatabaseBackend):
    """django-celery-results' database backend whose store is one upsert (see the module's doc)."""

    def _store_result(self, task_id, result, status, traceback=None, request=None, using=None):
        content_type, content_encoding, result = self.encode_content(result)
        meta = {**self._get_meta_from_request(request), "children": self.current_task_children(request)}
        _, _, encoded_meta = self.encode_content(meta)
        props = {"content_encoding": content_encoding, "content_type": content_type, "meta": encoded_meta,
                 "result": result, "status": status, "task_id": task_id, "traceback": traceback}
        props.update(self._get_extended_properties(request, traceback))
        upsert_result(props)
        return result
