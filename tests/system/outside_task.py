"""A toy job that calls out, for the tests of workers.outside: its results go to a table of its own
(created by the test, not a migration), and every record() that committed leaves a line in a log
table, so a late attempt that recorded anything would show.

Loaded into a test's worker with `celery worker --include tests.system.outside_task`. Its call waits
until the test creates `<dir>/release-<fence>` (and first writes `<dir>/call-<fence>` holding the pool
child's pid), so a test can stop the process in the middle of its outside call.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from django.db import connection

from resilience.celery import app
from workers.outside import Attempt, OutsideWork, run_outside_job

TASK = "tests.outside_toy"
CALL_WAIT_SECONDS = 120.0


def create_tables() -> None:
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS toy_outside_result "
                    "(idempotency_key text PRIMARY KEY, job_id text NOT NULL, fence int NOT NULL, value text NOT NULL)")
        cur.execute("CREATE TABLE IF NOT EXISTS toy_outside_log "
                    "(id serial PRIMARY KEY, job_id text NOT NULL, kind text NOT NULL, fence int NOT NULL)")


def drop_tables() -> None:
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS toy_outside_result, toy_outside_log")


def log(attempt: Attempt, kind: str) -> None:
    with connection.cursor() as cur:
        cur.execute("INSERT INTO toy_outside_log (job_id, kind, fence) VALUES (%s, %s, %s)",
                    [attempt.job_id, kind, attempt.fence])


def record_result(attempt: Attempt, value: str) -> None:
    """Idempotent by the job's key: a result already recorded stays the one recorded."""
    with connection.cursor() as cur:
        cur.execute("INSERT INTO toy_outside_result (idempotency_key, job_id, fence, value) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (idempotency_key) DO NOTHING",
                    [attempt.idempotency_key, attempt.job_id, attempt.fence, value])
    log(attempt, "record")


def results(job_id: str) -> list[tuple[str, int, str]]:
    """(idempotency key, fence, value) of every result recorded for the job."""
    with connection.cursor() as cur:
        cur.execute("SELECT idempotency_key, fence, value FROM toy_outside_result WHERE job_id = %s", [job_id])
        return list(cur.fetchall())


def logged(job_id: str, kind: str) -> list[int]:
    """The fences of the attempts whose `kind` step committed, in order."""
    with connection.cursor() as cur:
        cur.execute("SELECT fence FROM toy_outside_log WHERE job_id = %s AND kind = %s ORDER BY id", [job_id, kind])
        return [fence for (fence,) in cur.fetchall()]


class WaitingCall(OutsideWork[Path, str]):
    def prepare(self, attempt: Attempt) -> Path:
        log(attempt, "prepare")
        return Path(attempt.payload["dir"])

    def call(self, attempt: Attempt, prepared: Path) -> str:
        (prepared / f"call-{attempt.fence}").write_text(str(os.getpid()))
        release = prepared / f"release-{attempt.fence}"
        deadline = time.monotonic() + CALL_WAIT_SECONDS
        while not release.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{release} never appeared")
            time.sleep(0.05)
        return f"answer to {attempt.idempotency_key} (fence {attempt.fence})"

    def record(self, attempt: Attempt, prepared: Path, result: str) -> None:
        record_result(attempt, result)


@app.task(name=TASK, bind=True)
def outside_toy(self, job_id: str, dispatch_token: int) -> str:
    return run_outside_job(job_id, dispatch_token, worker=self.request.hostname or "unknown", work=WaitingCall())
