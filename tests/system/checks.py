"""Ledger and probe checks shared by the failure tests: nothing lost, nothing run twice."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from resilience.celery import app
from tests.system.processes import ProcessGroup, wait_for
from workers.models import Job
from workers.probe import PROBE_TASK, probe_starts

QUEUE = "lead-processing"
SKIP_LINE = "already claimed, finished or re-dispatched; skipping"


def ids(jobs: Iterable[Job]) -> list[str]:
    return [str(job.id) for job in jobs]


def all_succeeded(jobs: Iterable[Job]) -> Callable[[], bool]:
    job_ids = ids(jobs)
    return lambda: Job.objects.filter(id__in=job_ids, state=Job.State.SUCCEEDED).count() == len(job_ids)


def wait_succeeded(jobs: list[Job], timeout: float, processes: ProcessGroup) -> None:
    if not wait_for(all_succeeded(jobs), timeout):
        states = dict(Job.objects.filter(id__in=ids(jobs)).values_list("id", "state"))
        raise AssertionError(f"not all succeeded within {timeout}s: {states}\n{processes.logs()}")


def assert_ran_exactly_once(jobs: Iterable[Job], starts: Callable[[str], int] = probe_starts) -> None:
    """Each job succeeded, and every start of its handler was an attempt the ledger counted: an
    interrupted attempt may have started (and been retried), but no attempt ran twice and nothing
    ran outside an attempt (a duplicate message, a finished job started again)."""
    for job in Job.objects.filter(id__in=ids(jobs)):
        assert job.state == Job.State.SUCCEEDED, (job.id, job.state, job.last_error)
        assert starts(str(job.id)) == job.attempts, (job.id, starts(str(job.id)), job.attempts)


def resend_old_messages(jobs: Iterable[Job]) -> int:
    """Publish again every message each job was ever dispatched with (tokens 1..current), as a
    redelivery from kombu's unacked hash or a duplicate publish would. Returns how many."""
    sent = 0
    for job in Job.objects.filter(id__in=ids(jobs)):
        for token in range(1, job.dispatch_token + 1):
            app.send_task(PROBE_TASK, args=[str(job.id), token], task_id=str(job.id), queue=job.queue,
                          routing_key=job.queue)
            sent += 1
    return sent


def skipped_messages(processes: ProcessGroup) -> int:
    """Messages the workers skipped because the job was claimed or finished (needs LOG_LEVEL=INFO)."""
    return sum(processes.log_text(name).count(SKIP_LINE) for name in processes.procs)


_TASK_RESULT = re.compile(r"Task workers\.probe\[([0-9a-f-]{36})\] (?:succeeded in [^:]+: '(\w+)'|(raised) unexpected)")


def task_results(processes: ProcessGroup) -> dict[str, list[str]]:
    """job id -> what each execution of its task returned ('succeeded', 'skipped', 'retry', ...,
    or 'raised'), from the workers' own logs (needs LOG_LEVEL=INFO). A witness that survives a Redis
    restart, which wipes the probes' start counters."""
    results: dict[str, list[str]] = {}
    for name in processes.procs:
        for job_id, returned, raised in _TASK_RESULT.findall(processes.log_text(name)):
            results.setdefault(job_id, []).append(returned or raised)
    return results


def assert_ran_exactly_once_by_the_logs(jobs: Iterable[Job], processes: ProcessGroup) -> None:
    """Each job succeeded in exactly one execution, and every execution that was not skipped was an
    attempt the ledger counted."""
    results = task_results(processes)
    for job in Job.objects.filter(id__in=ids(jobs)):
        ran = [r for r in results.get(str(job.id), []) if r != "skipped"]
        assert job.state == Job.State.SUCCEEDED, (job.id, job.state, job.last_error)
        assert ran.count("succeeded") == 1 and len(ran) == job.attempts, (job.id, ran, job.attempts)
