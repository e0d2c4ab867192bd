"""Crash recovery under supervisord itself: deploy/supervisord.conf's pools and event listener.

Given: both pools as deploy/supervisord.conf runs them (a copy with its var/ paths in a temporary
directory), on the test database and Redis db, with the lease at 20 s.
When: the main process of the worker running a job is SIGKILLed mid-job.
Then: the job runs again well before the lease could have run out (under 10 s): supervisord tells
the event listener at once, which ends the job's lease for the reaper (deploy/supervisor_events.py);
without the listener, the worker that supervisord starts again releases what its previous process
held (workers.worker_steps.ReleasePreviousLife). Each job succeeds, every start an attempt.
"""
import pytest

from bench.footprint import Supervisor, kill_and_time
from tests.system.checks import assert_ran_exactly_once, wait_succeeded
from tests.system.processes import database_url, free_port
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
LEASE = 20


@pytest.fixture
def supervised(tmp_path, redis_client):
    from django.conf import settings

    url = database_url()
    sv = Supervisor({
        "DJANGO_SETTINGS_MODULE": "tests.settings", "TEST_DB_NAME": settings.DATABASES["default"]["NAME"],
        "TEST_DATABASE_URL": url, "DATABASE_URL": url, "TEST_REDIS_URL": settings.REDIS_URL,
        "JOB_LEASE_SECONDS": str(LEASE), "LOG_LEVEL": "INFO",
        "LEAD_PROCESSING_CONCURRENCY": "2", "DELIVERY_CONCURRENCY": "1", "LOCAL_QUEUES_CONCURRENCY": "3",
        "SITE_GENERATION_CONCURRENCY": "1", "EMAIL_SENDING_CONCURRENCY": "1", "NETWORK_QUEUES_CONCURRENCY": "2",
        "WORKER_MAX_MEMORY_PER_CHILD_KB": "1048576", "WORKER_STOP_WAIT_SECONDS": "20",
        "WEB_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
    }, only=("primary", "backup"), tmp=tmp_path)
    sv.start()
    yield sv
    sv.stop()


def logs(sv: Supervisor) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted((sv.tmp / "log").glob("*.log")))


@pytest.mark.parametrize("queue", ["lead-processing", "email-sending"])  # a prefork worker, a threads worker
def test_sigkill_of_a_worker_main_process_is_recovered_well_before_the_lease(supervised, queue):
    before = set(Job.objects.values_list("id", flat=True))
    took = kill_and_time([supervised], queue, "kill", timeout=LEASE + 10).seconds
    print(f"\nMEASURED supervisord event: {queue} job started again {took:.2f}s after its worker's main process "
          f"was SIGKILLed (lease {LEASE} s)")
    assert took < 10, logs(supervised)
    assert "running job(s) released" in (supervised.tmp / "log" / "worker-exits.log").read_text(), logs(supervised)

    # Without the listener: supervisord starts the worker again, which releases its previous life's job.
    supervised.ctl("stop", "worker-exits")
    assert supervised.states()["worker-exits"] == "STOPPED"
    took = kill_and_time([supervised], queue, "kill", timeout=LEASE + 10).seconds
    print(f"MEASURED restart release: {queue} job started again {took:.2f}s after the kill (lease {LEASE} s)")
    assert took < 10, logs(supervised)
    assert "1 job(s) of this worker's previous process end their lease now" in logs(supervised)

    jobs = list(Job.objects.exclude(id__in=before))
    assert len(jobs) == 2
    wait_succeeded(jobs, 30, processes=type("Logs", (), {"logs": lambda self: logs(supervised)})())
    assert_ran_exactly_once(jobs)
    assert all(job.attempts == 2 for job in Job.objects.filter(id__in=[j.id for j in jobs]))
