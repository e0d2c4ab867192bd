"""ledger.expire_leases_of: the jobs claimed by processes known to be gone end their lease now, for the reaper."""
import os
import subprocess

import pytest

from workers import ledger, liveness
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
State = Job.State
GONE = "lead-processing+delivery@primary.h"
DEAD_PID = 999_999_999  # above any pid_max: no process has it


def running(worker: str, pid: int = DEAD_PID) -> Job:
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    claimed = ledger.claim(dispatch.job_id, dispatch.token, worker, pid=pid)
    assert claimed is not None
    return claimed


def test_only_the_gone_process_running_jobs_lose_their_lease_and_the_reaper_returns_them():
    mine, other = running(GONE), running("lead-processing+delivery@backup.h")
    successor = running(GONE, pid=os.getpid())  # the same node name, a live process
    assert ledger.running_pids_of(GONE) == {DEAD_PID, os.getpid()}
    assert ledger.expire_leases_of(GONE, [DEAD_PID]) == 1
    assert ledger.reap_expired_leases() == 1
    for job in (mine, other, successor):
        job.refresh_from_db()
    assert (mine.state, mine.attempts) == (State.PENDING, 1)
    assert mine.last_error.startswith(f"WorkerLost: lease expired on {GONE}")
    assert other.state == State.RUNNING and other.lease_expires_at is not None
    assert successor.state == State.RUNNING and successor.lease_expires_at is not None


def test_a_finished_job_is_left_alone():
    job = running(GONE)
    ledger.complete(job)
    assert ledger.expire_leases_of(GONE, [DEAD_PID]) == 0
    assert ledger.expire_leases_of(GONE, []) == 0
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED


def test_the_claim_records_the_pid_it_is_given_or_its_own():
    assert running(GONE, pid=4242).worker_pid == 4242
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    assert ledger.claim(dispatch.job_id, dispatch.token, GONE).worker_pid == os.getpid()


def test_gone_pids_are_those_no_process_has():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert liveness.gone_pids([os.getpid(), proc.pid, DEAD_PID, 0]) == {proc.pid, DEAD_PID}


def test_a_worker_starting_under_the_name_releases_only_the_jobs_of_its_dead_previous_processes():
    from types import SimpleNamespace

    from workers import runner
    from workers.worker_steps import ReleasePreviousLife

    alive = subprocess.Popen(["sleep", "60"])  # a second worker started by hand under the same name
    try:
        dead_ones, others = running(GONE), running(GONE, pid=alive.pid)
        ReleasePreviousLife(SimpleNamespace(hostname=GONE))
        assert runner.worker_main_pid() == os.getpid()  # what this process's claims record from now on
        assert ledger.reap_expired_leases() == 1
        dead_ones.refresh_from_db()
        others.refresh_from_db()
        assert dead_ones.state == State.PENDING
        assert others.state == State.RUNNING and others.lease_expires_at is not None
    finally:
        alive.kill()
        alive.wait()
