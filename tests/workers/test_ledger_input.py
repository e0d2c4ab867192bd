"""The ledger with input the database refuses, and batches that repeat idempotency keys."""
import threading
import uuid

import pytest
from django.db import connection

from dlq.models import DeadLetter
from leads.models import Lead
from workers import ledger
from workers.errors import InvalidData, is_permanent
from workers.models import Job, JobFailure
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_database_data_error_in_a_handler_is_dead_lettered_at_once():
    job = ledger.enqueue("delivery", "test.task", {})
    [d] = ledger.take_due_jobs("delivery", 1)

    def handler(j):  # what a lead with 2147483648 employees did before the webhook bounded it
        Lead.objects.create(email="big@acme.io", status="qualified", employee_count=2_147_483_648)

    assert run_job(d.job_id, d.token, worker="w", handler=handler) == "dead"
    job.refresh_from_db()
    assert job.state == "dead" and job.attempts == 1 and "DataError" in job.last_error
    assert JobFailure.objects.filter(job=job).count() == 1
    assert "integer out of range" in DeadLetter.objects.get(job_id=str(job.id)).error_message
    assert not Lead.objects.exists()


def test_is_permanent():
    from django.db import DataError, OperationalError

    assert is_permanent(InvalidData("x")) and is_permanent(DataError("x"))
    assert not is_permanent(OperationalError("connection reset")) and not is_permanent(ConnectionError())


def test_enqueue_many_returns_existing_jobs_for_known_keys_and_creates_the_rest():
    old = ledger.enqueue("delivery", "t", {"n": 0}, idempotency_key="k-old")
    new_id, keyless_id = uuid.uuid4(), uuid.uuid4()

    jobs = ledger.enqueue_many("delivery", "t", [
        (uuid.uuid4(), {"n": 1}, "k-old"),
        (new_id, {"n": 2}, "k-new"),
        (keyless_id, {"n": 3}, None),
        (uuid.uuid4(), {"n": 4}, "k-new"),  # the same key twice in one batch: one job
    ])

    assert [job.id for job in jobs] == [old.id, new_id, keyless_id, new_id]
    assert [job.payload for job in jobs] == [{"n": 0}, {"n": 2}, {"n": 3}, {"n": 2}]
    assert Job.objects.count() == 3


def test_concurrent_batches_with_the_same_keys_create_each_job_once():
    results: list[list[Job]] = []
    barrier = threading.Barrier(4)

    def enqueue():
        try:
            barrier.wait(10)
            results.append(ledger.enqueue_many("delivery", "t", [
                (uuid.uuid4(), {"n": n}, f"shared-{n}") for n in range(20)
            ]))
        finally:
            connection.close()

    threads = [threading.Thread(target=enqueue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 4 and Job.objects.count() == 20
    assert all([job.id for job in jobs] == [job.id for job in results[0]] for jobs in results)
