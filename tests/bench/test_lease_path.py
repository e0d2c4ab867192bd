"""make bench's lease target is met by what the ledger shows a frozen worker's job went through,
not by JOB_LEASE_SECONDS: a job held less than its lease (let go early), or run again later than 5 s
after the frozen attempt's claim, never run again, taken back by something other than its lease, or
run again on the frozen worker, is NOT met."""
from datetime import timedelta

import pytest
from django.utils import timezone

from bench.footprint import LeasePath, Recovery
from workers.models import Job, JobFailure

pytestmark = pytest.mark.django_db
LEASE = 3.0


def frozen_then_rerun(held: float, *, error: str = "WorkerLost: lease expired on a@primary.h during attempt 1",
                      rerun_on: str = "b@backup.h", seconds: float | None = None) -> LeasePath:
    """The ledger as the reaper and the next attempt leave it: the frozen attempt's failure row,
    the job's current attempt `held` seconds after the frozen one's claim."""
    claimed = timezone.now() - timedelta(seconds=60)
    job = Job.objects.create(queue="lead-processing", task="workers.probe", state=Job.State.SUCCEEDED, attempts=2,
                             next_attempt_at=claimed, worker=rerun_on, started_at=claimed + timedelta(seconds=held))
    JobFailure.objects.create(job=job, queue=job.queue, attempt=1, worker="a@primary.h", error=error,
                              started_at=claimed)
    return LeasePath.of(Recovery(held if seconds is None else seconds, str(job.id)))


def test_the_lease_path_is_met_by_the_held_time_the_ledger_shows():
    assert frozen_then_rerun(4.3).met(LEASE)
    assert not frozen_then_rerun(1.2).met(LEASE)  # let go before its lease: the setting is not looked at
    assert not frozen_then_rerun(5.6).met(LEASE)  # recovered, but later than a vanished host's 5 s
    assert not frozen_then_rerun(20.3).met(20.0)  # the old 20 s lease: met no more
    assert not frozen_then_rerun(4.3, error="WorkerLost: the worker a@primary.h exited").met(LEASE)
    assert not frozen_then_rerun(4.3, rerun_on="a@primary.h").met(LEASE)
    never = frozen_then_rerun(4.3, seconds=float("inf"))
    assert not never.met(LEASE) and "not recovered" in never.figure()
