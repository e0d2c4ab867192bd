"""Graceful shutdown with real processes: SIGTERM is Celery's warm shutdown (supervisord's stopsignal).

Given: a worker running probe jobs, with more jobs published than it can run at once.
When: it gets SIGTERM (and, past the stop wait, SIGKILL for its whole group, as supervisord's
killasgroup does).
Then: the jobs it was running finish and it exits by itself, taking no new ones; the jobs it had
not started are run by the next worker, each exactly once; a job still running when the stop wait
runs out is recovered like after a crash.
"""
import os
import signal
import time

import pytest

from tests.system.checks import QUEUE, assert_ran_exactly_once, wait_succeeded
from tests.system.processes import wait_for
from workers.models import Job
from workers.probe import enqueue_probe, probe_starts

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def running(jobs: list[Job]) -> list[Job]:
    return [job for job in Job.objects.filter(id__in=[j.id for j in jobs], state="running")
            if probe_starts(str(job.id)) == 1]


def test_sigterm_lets_running_jobs_finish_and_loses_nothing(processes):
    # A redispatch longer than the test: any job that finishes did so from its first message, so
    # a message lost in the shutdown would show as a job that never finishes.
    processes.configure(JOB_REDISPATCH_SECONDS="120")
    processes.worker(QUEUE, "primary", 2)
    processes.dispatcher("primary")
    processes.wait_ready(f"{QUEUE}@primary")
    jobs = [enqueue_probe(QUEUE, sleep=4) for _ in range(6)]  # 6 published, 2 run at once
    assert wait_for(lambda: len(running(jobs)) == 2, 20), processes.logs()
    first = running(jobs)

    processes.kill(f"{QUEUE}@primary", signal.SIGTERM)
    stopping_at = time.monotonic()
    assert processes.wait_exit(f"{QUEUE}@primary", 20) == 0, processes.logs()
    print(f"\nMEASURED warm shutdown: worker exited by itself {time.monotonic() - stopping_at:.1f}s after SIGTERM "
          "(its jobs had up to 4 s left)")
    # The two jobs it was running finished, once; it started nothing after the SIGTERM.
    wait_succeeded(first, 1, processes)
    assert_ran_exactly_once(first)
    assert Job.objects.filter(id__in=[j.id for j in jobs], state="succeeded").count() == 2
    assert Job.objects.filter(id__in=[j.id for j in jobs], attempts=0).count() == 4

    processes.worker(QUEUE, "backup", 4)
    wait_succeeded(jobs, 30, processes)
    assert_ran_exactly_once(jobs)
    # Each ran from the message it was first published with: none was lost and published again.
    assert set(Job.objects.filter(id__in=[j.id for j in jobs]).values_list("attempts", "dispatch_token")) == {(1, 1)}
    assert {j.worker.split(".")[0] for j in Job.objects.filter(id__in=[j.id for j in jobs])} == {
        f"{QUEUE}@primary", f"{QUEUE}@backup"}


def test_a_job_still_running_after_the_stop_wait_is_recovered_like_a_crash(processes):
    for pool in ("primary", "backup"):
        processes.worker(QUEUE, pool, 1)
    processes.dispatcher("primary")
    for pool in ("primary", "backup"):
        processes.wait_ready(f"{QUEUE}@{pool}")
    job = enqueue_probe(QUEUE, sleep=5)
    assert wait_for(lambda: len(running([job])) == 1, 20), processes.logs()
    job.refresh_from_db()
    victim = job.worker.rsplit(".", 1)[0]

    processes.kill(victim, signal.SIGTERM)
    time.sleep(1)  # the stop wait (stopwaitsecs), shortened
    assert processes.alive(victim)  # still waiting for its job
    os.killpg(processes.pid(victim), signal.SIGKILL)  # supervisord: killasgroup=true
    killed_at = time.monotonic()

    assert wait_for(lambda: probe_starts(str(job.id)) == 2, 3 + 15), processes.logs()
    restarted = time.monotonic() - killed_at
    wait_succeeded([job], 5 + 15, processes)
    print(f"\nMEASURED SIGTERM, SIGKILL 1 s later: job started again {restarted:.1f}s after the kill (lease 3 s), "
          f"succeeded after {time.monotonic() - killed_at:.1f}s (probe 5 s)")
    job.refresh_from_db()
    assert job.worker.rsplit(".", 1)[0] != victim
    assert job.attempts == 2
    assert_ran_exactly_once([job])
