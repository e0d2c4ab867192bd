"""Hooks that run in a Celery worker's MAIN process, where Celery learns that a pool child died.

When a prefork child is killed mid-job (SIGKILL, the OOM killer, a segfault), the main process
sees it at once. With acks_late + reject_on_worker_lost it requeues the message, but that copy
carries the same dispatch token and finds the job `running` under the dead attempt: it would skip,
and the job would wait for its lease to expire (JOB_LEASE_SECONDS). Celery sends no signal for this
case (task_failure and the task-failed event are skipped when the message is requeued), so the
hook is a Request subclass: it ends the dead attempt in the ledger right away, and the dispatcher
publishes the job again on its next round. (A hard time limit is left to the lease: that task has
run for CELERY_TASK_TIME_LIMIT already, and its lease expires within JOB_LEASE_SECONDS of the kill.)

Every task of this app runs one ledger job with arguments (job_id, dispatch_token) and the job id
as its task id, so the Celery app uses LedgerJobTask as its task class (resilience/celery.py).
This module must stay importable before Django is set up: ledger imports happen inside functions.

The same request class counts each job's outcome for the worker's heartbeat (workers.job_counters):
the main process is where every result arrives, including the death of a pool child. The worker's
bootsteps are workers.worker_steps.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from billiard.exceptions import Terminated, WorkerLostError
from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from resilience.redaction import redact_text
from workers import job_counters
from workers.job_counters import FAILED_OUTCOMES

logger = logging.getLogger(__name__)

# What the main process sees when the child running a task stopped before reporting a result.
# (Billiard >= 4.3 may report SystemExit/KeyboardInterrupt from a dying child; Celery treats both
# as a lost worker too.)
CHILD_GONE = (WorkerLostError, Terminated, SystemExit, KeyboardInterrupt)


def release_dead_attempt(request: Request, reason: str) -> None:
    """Return the job whose attempt died with its pool child to the ledger, now.

    Never raises: this runs in the worker's event loop, and when PostgreSQL is away the lease
    reaper recovers the job anyway once the lease runs out.
    """
    from django.db import connection

    from workers import ledger, wakeup

    try:
        job_id, token = request.args[0], int(request.args[1])
    except (IndexError, TypeError, ValueError):
        return  # not a ledger job message
    try:
        if ledger.release_lost(job_id, token, request.hostname, reason):  # logs what it did
            wakeup.nudge()  # the dispatcher may publish it again now, not at its next poll
    except Exception as exc:
        logger.warning("job %s: pool process died (%s) but the ledger could not be told (%s); "
                       "the lease reaper will recover it", job_id, reason, exc)
    finally:
        # The main process forks the replacement child: it must not hold a connection the child inherits.
        connection.close()


def count_outcome(request: Request, returned: object = None, *, failed: bool = False,
                  rejected: bool = False) -> None:
    """Count a finished task for this worker's heartbeat. Never raises: bookkeeping must not break
    the worker's event loop."""
    try:
        queue = (request.delivery_info or {}).get("routing_key") or ""
        if rejected:
            job_counters.JOBS.count_rejection(queue)
        elif failed:
            job_counters.JOBS.count_failure(queue)
        else:
            job_counters.JOBS.count_result(queue, returned)
    except Exception:
        logger.warning("could not count the outcome of task %s", request.id, exc_info=True)


def _counting_successes(on_success: Callable) -> Callable:
    @functools.wraps(on_success)
    def counted(self, failed__retval__runtime, **kwargs):
        failed, returned, _runtime = failed__retval__runtime
        if not failed:  # a task that raised goes on to on_failure, which counts it
            count_outcome(self, returned)
        return on_success(self, failed__retval__runtime, **kwargs)

    return counted


class LedgerJobRequest(Request):
    def __init_subclass__(cls, **kwargs):
        # The worker runs a subclass of this class built per task (celery.worker.request.
        # create_request_cls) whose on_success replaces any of ours without calling it (celery#4526,
        # open): an on_success defined here would never run. So each subclass's on_success, its own
        # or inherited, is wrapped to count the job's outcome.
        super().__init_subclass__(**kwargs)
        cls.on_success = _counting_successes(cls.on_success)

    def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
        exc = getattr(exc_info.exception, "exc", exc_info.exception)  # ExceptionWithTraceback wraps it
        if isinstance(exc, CHILD_GONE):
            release_dead_attempt(self, f"pool process exited ({type(exc).__name__}: {exc})")
        # A dead pool child, a time limit, or a task that raised; a job refused for its own input
        # arrives as JobInputRejected (the pool hands the exception over pickled, its class kept).
        count_outcome(self, failed=True, rejected=isinstance(exc, JobInputRejected))
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class JobAttemptFailed(Exception):
    """Raised after the ledger has recorded a failed attempt, so that Celery's events (and Flower)
    show the task as failed, as the ledger does. Nothing acts on it: the ledger already scheduled the
    retry or dead-lettered the job, and the message is acknowledged like any finished task.
    Its message is the job's last error, which the ledger redacted."""


class JobInputRejected(JobAttemptFailed):
    """The job was dead-lettered because its own input was refused (workers.errors.InvalidData, such
    as an invalid lead): the worker counts it as rejected, not failed, as the health rules do."""


class TaskCrashed(Exception):
    """An error that escaped the ledger (it could not record the attempt, or the task failed before
    claiming its job), passed on to Celery with its message redacted and without its chain of
    exceptions: Celery's task-failed event carries the repr and the traceback as text, and the
    chain would quote the job's own error unredacted."""


# Celery's own flow control, raised on purpose: passed on as they are.
_CELERY_CONTROL = (Ignore, Reject, Retry)


# Outcomes of a message that did not run the job's attempt (a duplicate or stale message, a start
# deferred by the rate limit, a late attempt refused): its Celery result must not replace the stored
# result of the attempt that did run (one TaskResult row per job id).
NOT_THE_JOBS_RESULT = frozenset({"skipped", "deferred", "lost"})


class LedgerJobTask(Task):
    Request = "workers.worker_signals:LedgerJobRequest"
    # Expected: the worker logs it on one line, without a traceback (the ledger logged the error).
    throws = (JobAttemptFailed,)

    def __call__(self, *args, **kwargs):
        started = time.monotonic()
        try:
            outcome = super().__call__(*args, **kwargs)
        except _CELERY_CONTROL:
            raise
        except Exception as exc:
            crashed = TaskCrashed(redact_text(f"{type(exc).__name__}: {exc}"))
            raise crashed.with_traceback(exc.__traceback__) from None
        finally:
            # Stored with Celery's result (django-celery-results reads request.meta into TaskResult.meta),
            # so the admin shows the runtime without a second write per task for a STARTED state.
            self.request.meta = {"runtime_seconds": round(time.monotonic() - started, 6)}
        if outcome in NOT_THE_JOBS_RESULT:
            self.request.ignore_result = True  # read by Celery's tracer when it stores the outcome
        if outcome in FAILED_OUTCOMES:
            error, rejected = _last_error(args[0])
            if outcome == "dead" and rejected:
                raise JobInputRejected(f"input rejected, job is now dead: {error}")
            raise JobAttemptFailed(f"attempt failed, job is now {outcome}: {error}")
        return outcome


def _last_error(job_id: str) -> tuple[str, bool]:
    """The job's last error, and whether it was dead-lettered for its own input."""
    from workers.models import Job

    # Already redacted where the ledger wrote it (ledger.fail): this text travels on in Celery's
    # events (Flower) and its stored result (TaskResult).
    error, rejected = Job.objects.filter(id=job_id).values_list("last_error", "rejected").first() or ("", False)
    return error or "(no error recorded)", rejected
