"""Crash recovery with real processes: SIGKILL of a worker's main process, SIGKILL of a pool child.

Given: two worker pools ("primary" and "backup") on one queue, and a dispatcher.
When: the process running a probe job is killed mid-job.
Then: the job runs again on a live process and succeeds exactly once in the ledger; jobs that had
finished never run again, even when their old messages are delivered again.
"""
import os
import signal
import time

import pytest

from tests.system.checks import (
    QUEUE,
    assert_ran_exactly_once,
    resend_old_messages,
    skipped_messages,
    wait_succeeded,
)
from tests.system.processes import pid_alive, wait_for
from workers.models import Job
from workers.probe import enqueue_probe, probe_starts

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
POOLS = ("primary", "backup")


def start_pools(processes, concurrency: int = 1) -> None:
    for pool in POOLS:
        processes.worker(QUEUE, pool, concurrency)
    processes.dispatcher("primary")
    for pool in POOLS:
        processes.wait_ready(f"{QUEUE}@{pool}")


def wait_running(job: Job, processes) -> Job:
    """Until the probe has started (its start is counted); returns the fresh row."""
    running = wait_for(
        lambda: Job.objects.filter(id=job.id, state="running").exists() and probe_starts(str(job.id)) == 1, 20
    )
    assert running, processes.logs()
    return Job.objects.get(id=job.id)


def process_name(job: Job) -> str:
    """lead-processing@primary.<host> -> the ProcessGroup name lead-processing@primary."""
    return job.worker.rsplit(".", 1)[0] if "." in job.worker else job.worker


def pool_of(job: Job) -> str:
    return job.worker.split("@", 1)[1].split(".", 1)[0]


def assert_finished_jobs_never_run_again(jobs: list[Job], processes) -> None:
    """Deliver every message each job ever had once more: all are skipped, no probe starts again."""
    skipped_before = skipped_messages(processes)
    sent = resend_old_messages(jobs)
    assert wait_for(lambda: skipped_messages(processes) - skipped_before >= sent, 20), processes.logs()
    assert_ran_exactly_once(jobs)


def test_sigkill_of_a_worker_main_process_mid_job(processes):
    processes.configure(LOG_LEVEL="INFO")
    start_pools(processes)
    finished = [enqueue_probe(QUEUE) for _ in range(4)]
    wait_succeeded(finished, 20, processes)
    job = wait_running(enqueue_probe(QUEUE, sleep=5), processes)
    victim = process_name(job)
    children = processes.pool_children(victim)
    assert children, f"{victim} has no pool children"

    processes.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert processes.wait_exit(victim, 5) == -signal.SIGKILL

    # The orphaned pool child does not finish the job: Celery's prefork children set
    # PR_SET_PDEATHSIG=SIGKILL (celery.concurrency.prefork.process_initializer), so the kernel kills
    # them with their parent. The attempt was really interrupted: it will have started twice.
    assert wait_for(lambda: not any(pid_alive(pid) for pid in children), 5), f"orphans left: {children}"
    # Nobody renews the lease now; the dispatcher's reaper returns the job to pending once it
    # expires (3 s in tests) and it runs again on the other pool.
    assert wait_for(lambda: probe_starts(str(job.id)) == 2, 3 + 15), processes.logs()
    restarted = time.monotonic() - killed_at
    wait_succeeded([job], 5 + 15, processes)
    print(f"\nMEASURED main SIGKILL: job started again {restarted:.1f}s after the kill (lease 3 s), "
          f"succeeded after {time.monotonic() - killed_at:.1f}s (probe 5 s)")
    job.refresh_from_db()
    assert pool_of(job) != victim.split("@")[1]
    assert job.attempts == 2 and probe_starts(str(job.id)) == 2
    assert_finished_jobs_never_run_again(finished + [job], processes)


def test_sigkill_of_a_pool_child_runs_the_job_again_at_once(processes):
    # A long lease, so that a quick re-run proves the worker released the job itself rather than
    # the reaper finding an expired lease (which would take about 20 s here).
    processes.configure(LOG_LEVEL="INFO", JOB_LEASE_SECONDS="20")
    start_pools(processes)
    finished = [enqueue_probe(QUEUE) for _ in range(4)]
    wait_succeeded(finished, 20, processes)
    job = wait_running(enqueue_probe(QUEUE, sleep=3), processes)
    victim = process_name(job)
    [child] = processes.pool_children(victim)

    os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()

    # Well before the 20 s lease could have run out.
    assert wait_for(lambda: probe_starts(str(job.id)) == 2, 10), processes.logs()
    restarted = time.monotonic() - killed_at
    wait_succeeded([job], 3 + 10, processes)
    print(f"\nMEASURED pool child SIGKILL: job started again {restarted:.1f}s after the kill (lease 20 s), "
          f"succeeded after {time.monotonic() - killed_at:.1f}s (probe 3 s)")
    job.refresh_from_db()
    assert job.attempts == 2 and probe_starts(str(job.id)) == 2
    # The worker's main process saw its child die and ended the attempt in the ledger itself.
    assert f"job {job.id} ({QUEUE}): WorkerLost: pool process exited" in processes.log_text(victim), processes.logs()
    assert processes.alive(victim)  # and it replaced the child and goes on
    assert_finished_jobs_never_run_again(finished + [job], processes)
