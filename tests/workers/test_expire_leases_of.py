"""ledger.expire_leases_of: the jobs of a worker known to be gone end their lease now, for the reaper."""
import pytest

from workers import ledger
from workers.models import Job

# Committed rows: the guard compares started_at with now(), which inside one transaction is its start.
pytestmark = pytest.mark.django_db(transaction=True)
State = Job.State
GONE = "lead-processing+delivery@primary.h"


def running(worker: str) -> Job:
    job = ledger.enqueue("lead-processing", "leads.process_lead", {"n": 1})
    [dispatch] = ledger.take_due_jobs(job.queue, 10)
    claimed = ledger.claim(dispatch.job_id, dispatch.token, worker)
    assert claimed is not None
    return claimed


def test_only_the_gone_workers_running_jobs_lose_their_lease_and_the_reaper_returns_them():
    mine, other = running(GONE), running("lead-processing+delivery@backup.h")
    assert ledger.expire_leases_of(GONE) == 1
    assert ledger.reap_expired_leases() == 1
    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.state, mine.attempts) == (State.PENDING, 1)
    assert mine.last_error.startswith(f"WorkerLost: lease expired on {GONE}")
    assert other.state == State.RUNNING and other.lease_expires_at is not None


def test_a_finished_job_is_left_alone():
    job = running(GONE)
    ledger.complete(job)
    assert ledger.expire_leases_of(GONE) == 0
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED
