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

The same request class counts each job's outcome for the worker's heartbeat (monitoring.heartbeat.JOBS):
the main process is where every result arrives, including the death of a pool child.
"""
from __future__ import annotations

import functools
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

from billiard.exceptions import Terminated, WorkerLostError
from celery import Task, bootsteps
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from resilience.redaction import redact_text

logger = logging.getLogger(__name__)

# How often the main process looks for pool children that exited (Celery's own timer: 5 s).
CHILD_EXIT_CHECK_SECONDS = 0.5

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


def count_outcome(request: Request, returned: object = None, *, failed: bool = False) -> None:
    """Count a finished task for this worker's heartbeat. Never raises: bookkeeping must not break
    the worker's event loop."""
    try:
        from monitoring.heartbeat import JOBS

        queue = (request.delivery_info or {}).get("routing_key") or ""
        if failed:
            JOBS.count_failure(queue)
        else:
            JOBS.count_result(queue, returned)
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
        count_outcome(self, failed=True)  # a dead pool child, a time limit, or a task that raised
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class JobAttemptFailed(Exception):
    """Raised after the ledger has recorded a failed attempt, so that Celery's events (and Flower)
    show the task as failed, as the ledger does. Nothing acts on it: the ledger already scheduled the
    retry or dead-lettered the job, and the message is acknowledged like any finished task.
    Its message is the job's last error, which the ledger redacted."""


class TaskCrashed(Exception):
    """An error that escaped the ledger (it could not record the attempt, or the task failed before
    claiming its job), passed on to Celery with its message redacted and without its chain of
    exceptions: Celery's task-failed event carries the repr and the traceback as text, and the
    chain would quote the job's own error unredacted."""


# Celery's own flow control, raised on purpose: passed on as they are.
_CELERY_CONTROL = (Ignore, Reject, Retry)


# run_job's outcomes that are a failed attempt (see workers.runner).
FAILED_OUTCOMES = frozenset({"retry", "dead", "lost"})
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
            raise JobAttemptFailed(f"attempt failed, job is now {outcome}: {_last_error(args[0])}")
        return outcome


def _last_error(job_id: str) -> str:
    from workers.models import Job

    # Already redacted where the ledger wrote it (ledger.fail): this text travels on in Celery's
    # events (Flower) and its stored result (TaskResult).
    error = Job.objects.filter(id=job_id).values_list("last_error", flat=True).first()
    return error or "(no error recorded)"


class NoticeDeadChildrenPromptly(bootsteps.StartStopStep):
    """Look for exited pool children every CHILD_EXIT_CHECK_SECONDS rather than every 5 s.

    Celery reacts to a child's exit when the child's sentinel pipe closes, but the kernel closes
    that pipe a moment before the child can be reaped; when Celery looks in that moment it finds
    the child still there and only notices it on its next 5 s maintenance tick (measured here: a
    killed child's job started again after 0.3 s in half the runs, 4.5 s in the others).
    """

    requires = ("celery.worker.components:Pool",)

    def start(self, worker):
        maintain = getattr(worker.pool, "maintain_pool", None)
        if getattr(worker, "hub", None) is not None and maintain is not None:  # prefork on the event loop
            worker.hub.call_repeatedly(CHILD_EXIT_CHECK_SECONDS, maintain)


class FreezeHeapBeforeFork(bootsteps.Step):
    """gc.freeze() in the worker's main process once every module is imported, before the pool forks.

    A forked pool child shares the parent's memory until it writes to a page. CPython's cyclic
    garbage collector writes to every object it examines (its gc header), so the first collection in
    a child copied nearly the whole inherited heap: 36 MB private per child, measured. Frozen objects
    sit in a permanent generation the collector never visits, so the pages stay shared. Done in the
    step's constructor: the worker builds every step (after importing the task modules) before it
    starts any, and the prefork pool forks when its step starts.
    """

    label = "FreezeHeapBeforeFork"

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        gc.collect()  # what is garbage now need not be kept forever
        gc.freeze()


class ReleasePreviousLife(bootsteps.Step):
    """A worker starting under a node name (`lead-processing+delivery@primary.<host>`) records its main
    process's pid for its claims (workers.runner.worker_main_pid) and ends the leases of the jobs still
    `running` under that name whose claiming process is gone: they belong to a previous process of the
    same name that died (supervisord starts it again at once), and nothing renews them. The reaper then
    returns them within a second instead of when their lease runs out. A job of a process of that name
    that is still alive (a second worker started by hand under the same name) is left alone. Done in
    the constructor, before any step starts and before the pool forks, so that every child inherits
    the pid. Never fails the start: the lease is still there for what this misses."""

    label = "ReleasePreviousLife"

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        from django.db import connection

        from workers import ledger, liveness, runner

        runner.remember_worker_main_process()
        try:
            gone = liveness.gone_pids(ledger.running_pids_of(worker.hostname))
            released = ledger.expire_leases_of(worker.hostname, gone)
            if released:
                logger.warning("%s: %d job(s) of this worker's previous process end their lease now (pid %s)",
                               worker.hostname, released, ", ".join(map(str, sorted(gone))))
        except Exception as exc:
            logger.warning("%s: could not release the jobs of a previous process (%s); their leases will "
                           "run out", worker.hostname, exc)
        finally:
            connection.close()  # the pool forks next: no child may inherit this connection


# How often a worker without pool children checks its own memory against the per-child cap.
MEMORY_CHECK_SECONDS = 10.0


class MemoryCapWithoutChildren(bootsteps.StartStopStep):
    """PM2's max_memory_restart for a worker whose jobs run in its own process (-P threads):
    --max-memory-per-child only watches prefork children, so here the main process checks its own
    resident memory against that same option and, above it, asks itself for a warm shutdown
    (running jobs finish); supervisord starts it again (autorestart)."""

    requires = ("celery.worker.components:Timer",)
    label = "MemoryCapWithoutChildren"

    def start(self, worker) -> None:
        if type(worker.pool).__module__.endswith("prefork"):
            return  # the prefork pool applies --max-memory-per-child to its children itself
        cap_kb = worker.max_memory_per_child or 0  # the same command-line option, KiB
        if cap_kb <= 0 or getattr(worker, "timer", None) is None:
            return

        asked = []

        def check() -> None:
            from monitoring.heartbeat import process_tree_rss

            rss_kb = process_tree_rss(os.getpid()) // 1024
            if rss_kb > cap_kb and not asked:  # once: the warm shutdown is under way
                asked.append(rss_kb)
                logger.warning("%s: resident memory %d KiB is above the cap of %d KiB: warm shutdown, "
                               "supervisord starts it again", worker.hostname, rss_kb, cap_kb)
                os.kill(os.getpid(), signal.SIGTERM)

        worker.timer.call_repeatedly(MEMORY_CHECK_SECONDS, check)
