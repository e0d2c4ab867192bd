"""A job that calls out, stopped in the middle of its outside call, with real workers.

Given: two worker pools ("primary" and "backup") on one queue, each one process, both loading the toy
outside task (tests.system.outside_task), and a dispatcher; the job lease is 3 s.
When: the pool child running the job's call is stopped (SIGSTOP) until its lease is reaped and the job
runs on the other pool, then continued (SIGCONT) and its call returns.
Then: one result is recorded, by the attempt that owned the job; the late attempt is refused at
record time and its worker logs the refusal with both fences.
"""
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from dlq import actions
from dlq.models import DeadLetter
from tests.system import outside_task as toy
from tests.system.processes import ProcessGroup, wait_for
from workers import ledger
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
QUEUE = "site-generation"
POOLS = ("primary", "backup")


@pytest.fixture(autouse=True)
def toy_tables():
    toy.create_tables()
    yield
    toy.drop_tables()


def start_pools(processes: ProcessGroup) -> None:
    for pool in POOLS:
        name = f"{QUEUE}@{pool}"
        processes.start(name, [
            sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q", QUEUE, "-c", "1",
            "-n", f"{name}.%h", "--without-gossip", "--without-mingle", "-l", "info",
            "--include", "tests.system.outside_task",
        ])
    processes.dispatcher("primary")
    for pool in POOLS:
        processes.wait_ready(f"{QUEUE}@{pool}")


def enqueue(calls: Path, *, max_attempts: int | None = None) -> Job:
    from django.db import transaction

    with transaction.atomic():  # before the dispatcher can see it
        job = ledger.enqueue(QUEUE, toy.TASK, {"dir": str(calls)})
        if max_attempts is not None:
            Job.objects.filter(id=job.id).update(max_attempts=max_attempts)
    return job


def call_started(calls: Path, fence: int, processes: ProcessGroup) -> int:
    """Until the attempt with `fence` is in its outside call; returns the pid of the process making it."""
    marker = calls / f"call-{fence}"
    assert wait_for(lambda: marker.exists() and marker.read_text(), 20, interval=0.05), processes.logs()
    return int(marker.read_text())


def refusal(job: Job, late: int, current: int, state: str) -> str:
    return (f"job {job.id}: late attempt 1 (fence {late}) refused, the job is {state} under fence {current}; "
            "its effects were rolled back and its result discarded")


def logged_by(processes: ProcessGroup, line: str) -> list[str]:
    return [name for name in processes.procs if line in processes.log_text(name)]


def worker_of(job: Job) -> str:
    """lead-processing@primary.<host> -> the ProcessGroup name."""
    return job.worker.rsplit(".", 1)[0]


@pytest.fixture
def stopped():
    """Pids this test stopped: continued whatever happens, so that the processes can be stopped."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_a_stalled_call_reaped_and_run_elsewhere_is_refused_when_it_resumes(processes, tmp_path, stopped):
    start_pools(processes)
    (tmp_path / "release-2").touch()  # the second attempt's call answers at once
    job = enqueue(tmp_path)
    pid = call_started(tmp_path, 1, processes)
    first_worker = worker_of(Job.objects.get(id=job.id))
    os.kill(pid, signal.SIGSTOP)
    stopped.append(pid)
    stopped_at = time.monotonic()

    # Nobody renews the lease now (3 s): the reaper returns the job, it runs on the other pool.
    assert wait_for(lambda: Job.objects.filter(id=job.id, state="succeeded").exists(), 30), processes.logs()
    print(f"\nMEASURED outside call stopped: the job succeeded on the other pool "
          f"{time.monotonic() - stopped_at:.1f}s after the SIGSTOP (lease 3 s)")
    job.refresh_from_db()
    assert worker_of(job) != first_worker and (job.attempts, job.dispatch_token) == (2, 2)
    assert [fence for _, fence, _ in toy.results(str(job.id))] == [2]

    os.kill(pid, signal.SIGCONT)
    (tmp_path / "release-1").touch()
    line = refusal(job, 1, 2, "succeeded")
    assert wait_for(lambda: logged_by(processes, line), 20), processes.logs()
    assert logged_by(processes, line) == [first_worker]

    assert toy.logged(str(job.id), "prepare") == [1, 2]
    assert toy.logged(str(job.id), "record") == [2]  # the late record() was rolled back
    assert [fence for _, fence, _ in toy.results(str(job.id))] == [2]
    job.refresh_from_db()
    assert (job.state, job.attempts, job.dispatch_token) == ("succeeded", 2, 2)


def test_a_stalled_call_cannot_record_into_a_requeued_run_at_the_same_attempt_number(processes, tmp_path, stopped):
    """Its only attempt stalls: reaped, the job is dead-lettered and an operator requeues it, so the new
    run is attempt 1 again. The stalled call resumes and returns while that run is in its own call:
    fenced by attempts, it would record and complete the job in the new run's place."""
    start_pools(processes)
    job = enqueue(tmp_path, max_attempts=1)
    pid = call_started(tmp_path, 1, processes)
    first_worker = worker_of(Job.objects.get(id=job.id))
    os.kill(pid, signal.SIGSTOP)
    stopped.append(pid)

    assert wait_for(lambda: DeadLetter.objects.filter(job_id=str(job.id)).exists(), 30), processes.logs()
    entry = DeadLetter.objects.get(job_id=str(job.id))
    assert "WorkerLost: lease expired" in entry.error_message
    actions.requeue(entry.id, by="test")
    call_started(tmp_path, 2, processes)
    owner = Job.objects.get(id=job.id)
    assert (owner.state, owner.attempts, owner.dispatch_token) == ("running", 1, 2)
    assert worker_of(owner) != first_worker

    os.kill(pid, signal.SIGCONT)
    (tmp_path / "release-1").touch()
    line = refusal(job, 1, 2, "running")
    assert wait_for(lambda: logged_by(processes, line), 20), processes.logs()
    assert logged_by(processes, line) == [first_worker]
    assert toy.results(str(job.id)) == [] and toy.logged(str(job.id), "record") == []

    (tmp_path / "release-2").touch()
    assert wait_for(lambda: Job.objects.filter(id=job.id, state="succeeded").exists(), 20), processes.logs()
    assert toy.logged(str(job.id), "record") == [2]
    assert [fence for _, fence, _ in toy.results(str(job.id))] == [2]
    job.refresh_from_db()
    assert (job.attempts, job.dispatch_token, worker_of(job)) == (1, 2, worker_of(owner))
