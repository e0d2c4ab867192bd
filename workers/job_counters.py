"""The jobs a worker process finished since it started, counted in its main process (which hears
every task's result, and the death of a pool child) for its heartbeat rows (workers.heartbeat).

Standard library and Django's timezone only: workers.worker_signals, the task class, imports it
and must stay importable before Django is set up.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

# What workers.runner.run_job returns: a new state of the job, or what it did instead of running it
# ("skipped" and "deferred" ran nothing). A failed attempt reaches the worker as JobAttemptFailed,
# counted by on_failure (a job dead-lettered for its own input as JobInputRejected, counted as
# rejected); FAILED_OUTCOMES here also counts a task that returned one without raising.
DONE_OUTCOMES = frozenset({"succeeded"})
FAILED_OUTCOMES = frozenset({"retry", "dead", "lost"})


@dataclass(frozen=True)
class JobCounts:
    done: int = 0
    failed: int = 0  # attempts that failed, rejected input excepted
    last_job_at: datetime | None = None
    # Jobs dead-lettered because their own input was refused (workers.errors.InvalidData): the
    # health rules count them apart from failures, and so does the worker, or the dashboard's
    # workers table would call "failed" what its queues table calls rejected.
    rejected: int = 0

    def __add__(self, other: JobCounts) -> JobCounts:
        moments = [m for m in (self.last_job_at, other.last_job_at) if m is not None]
        return JobCounts(self.done + other.done, self.failed + other.failed, max(moments, default=None),
                         self.rejected + other.rejected)


def job_state(returned: object) -> str:
    """The job state a task returned, as the main process sees it: the pool hands it the result's
    repr ("'succeeded'"), not the value."""
    return str(returned).strip("'\"")


class JobCounters:
    """Jobs this worker process finished since it started, per queue. Counted in the worker's main
    process, which hears every task's result (a pool child's counts would die with the child) and
    the death of a pool child; read by the heartbeat thread, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_queue: dict[str, JobCounts] = {}

    def count_result(self, queue: str, returned: object) -> None:
        state = job_state(returned)
        if state in DONE_OUTCOMES:
            self._add(queue, JobCounts(done=1, last_job_at=timezone.now()))
        elif state in FAILED_OUTCOMES:
            self.count_failure(queue)

    def count_failure(self, queue: str) -> None:
        self._add(queue, JobCounts(failed=1, last_job_at=timezone.now()))

    def count_rejection(self, queue: str) -> None:
        self._add(queue, JobCounts(rejected=1, last_job_at=timezone.now()))

    def _add(self, queue: str, counts: JobCounts) -> None:
        with self._lock:
            self._by_queue[queue] = self._by_queue.get(queue, JobCounts()) + counts

    def snapshot(self, queue: str | None = None) -> JobCounts:
        """One queue's counts, or (None) the whole process's."""
        with self._lock:
            if queue is not None:
                return self._by_queue.get(queue, JobCounts())
            return sum(self._by_queue.values(), JobCounts())


JOBS = JobCounters()  # this process's: only a worker's main process counts into it
