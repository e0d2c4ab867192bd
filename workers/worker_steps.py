"""The Celery worker's bootsteps (resilience/celery.py adds them to the worker's blueprint): they run
in the worker's MAIN process, around the pool that forks the children running the jobs.
"""
from __future__ import annotations

import gc
import logging
import os
import signal

from celery import bootsteps

from workers.heartbeat import HeartbeatThread, consumer_running, identities
from workers.processes import tree_rss_bytes

logger = logging.getLogger(__name__)

# How often the main process looks for pool children that exited (Celery's own timer: 5 s).
CHILD_EXIT_CHECK_SECONDS = 0.5
# How often a worker without pool children checks its own memory against the per-child cap.
MEMORY_CHECK_SECONDS = 10.0


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
            rss_kb = tree_rss_bytes(os.getpid()) // 1024
            if rss_kb > cap_kb and not asked:  # once: the warm shutdown is under way
                asked.append(rss_kb)
                logger.warning("%s: resident memory %d KiB is above the cap of %d KiB: warm shutdown, "
                               "supervisord starts it again", worker.hostname, rss_kb, cap_kb)
                os.kill(os.getpid(), signal.SIGTERM)

        worker.timer.call_repeatedly(MEMORY_CHECK_SECONDS, check)


class Heartbeat(bootsteps.StartStopStep):
    """The heartbeat thread (workers.heartbeat) lives as long as the worker.

    After the pool, so that the first beat already counts the pool children's memory; stopped
    before the pool in a warm shutdown, so the row shows the worker stopped as soon as it stops
    consuming, while its running tasks still finish.
    """

    requires = ("celery.worker.components:Pool",)
    label = "Heartbeat"

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.thread: HeartbeatThread | None = None

    def start(self, worker) -> None:
        queues = list(worker.app.amqp.queues.consume_from)
        rows = identities(worker.hostname, queues)
        # With --autoscale, what the worker may grow to (its -c is then unused).
        concurrency = getattr(worker, "max_concurrency", None) or worker.concurrency or 0
        self.thread = HeartbeatThread(rows, pid=os.getpid(), concurrency=concurrency,
                                      started_at=getattr(worker, "startup_time", None),
                                      consuming=lambda: consumer_running(worker))
        self.thread.start()

    def stop(self, worker) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.stop()

    # A cold shutdown stops the worker too: say so the same way.
    terminate = stop
