"""Worker heartbeats: every Celery worker's main process writes its WorkerHeartbeat row every
HEARTBEAT_INTERVAL_SECONDS with an expiry HEARTBEAT_TTL_SECONDS ahead, so a worker that goes silent
(SIGKILL, OOM, a lost host) drops out of the health rules' live consumers by itself; a warm shutdown
says goodbye at once. The reader side is monitoring/health.py; the
worker's bootstep that runs the thread is workers.worker_steps, the leader's own row workers.leader_heartbeat.

beat_at and expires_at are the database's clock (Now()), so workers on hosts whose clocks disagree
are judged alike; started_at and last_job_at are the worker host's clock and only for display.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from workers.job_counters import JOBS, JobCounters
from workers.models import WorkerHeartbeat
from workers.processes import tree_rss_bytes

logger = logging.getLogger(__name__)

# How long a warm shutdown waits for the heartbeat thread's last beat and goodbye: a PostgreSQL that
# does not answer must not hold the shutdown (the row expires by itself anyway).
STOP_WAIT_SECONDS = 10.0
# How often the heartbeat thread looks at the consumer between beats, to beat at once when it
# starts or stops consuming.
CONSUMER_CHECK_SECONDS = 1.0


# --- the rows ----------------------------------------------------------------------------------

def beat(*, name: str, pool: str, queue: str, host: str, pid: int, concurrency: int, started_at: datetime,
         jobs_done: int = 0, jobs_failed: int = 0, jobs_rejected: int = 0, last_job_at: datetime | None = None,
         memory_bytes: int = 0, consuming: bool = True) -> None:
    """Insert or refresh one worker's heartbeat row in one statement; a restarted worker of the same
    name takes its row over (new pid, counters from zero, no longer stopped)."""
    row = WorkerHeartbeat(
        name=name, pool=pool, queue=queue, host=host, pid=pid, concurrency=concurrency, started_at=started_at,
        beat_at=Now(), expires_at=Now() + timedelta(seconds=settings.HEARTBEAT_TTL_SECONDS), stopped_at=None,
        jobs_done=jobs_done, jobs_failed=jobs_failed, jobs_rejected=jobs_rejected, last_job_at=last_job_at,
        memory_bytes=memory_bytes, consuming=consuming,
    )
    WorkerHeartbeat.objects.bulk_create(
        [row], update_conflicts=True, unique_fields=["name"],
        update_fields=[f.name for f in WorkerHeartbeat._meta.concrete_fields if f.name not in ("id", "name")],
    )


def say_goodbye(name: str, *, pid: int | None = None) -> bool:
    """Mark a worker stopped now (warm shutdown), so it stops counting as a consumer at once rather
    than when its heartbeat expires. With pid, only if the row is still that process's: a worker of
    the same name started meanwhile keeps its row."""
    rows = WorkerHeartbeat.objects.filter(name=name, stopped_at__isnull=True)
    if pid is not None:
        rows = rows.filter(pid=pid)
    return bool(rows.update(stopped_at=Now(), expires_at=Now()))


# --- who a worker is ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    pool: str
    queue: str
    host: str


def identities(nodename: str, queues: Sequence[str]) -> list[WorkerIdentity]:
    """The heartbeat rows of one Celery worker, from its node name and the queues it consumes.

    Production nodes are `<queue>@<pool>.<host>`, or `<queue>+<queue>@<pool>.<host>` for a worker
    that consumes several queues (deploy/supervisord.conf). A node on one queue is one row named as
    the node (the name Job.worker, Flower and `celery inspect` show). A node on several queues, such
    as the development runner's `dev@<host>` consuming every queue, gets one row per queue named
    `<node>/<queue>`, because the health rules count live rows per queue; its pool is the part
    after the @ for a production name, else the part before it.
    """
    prefix, _, rest = nodename.partition("@")
    if set(prefix.split("+")) <= set(queues):  # <queues>@<pool>.<host>; a host name may hold dots itself
        pool, _, host = rest.partition(".")
    else:
        pool, host = prefix, rest
    host = host or socket.gethostname()
    unique = sorted(set(queues))
    if len(unique) == 1:
        return [WorkerIdentity(nodename, pool, unique[0], host)]
    return [WorkerIdentity(f"{nodename}/{queue}", pool, queue, host) for queue in unique]


# --- is the consumer running? ------------------------------------------------------------------

def consumer_running(worker) -> bool:
    """True while the worker's Celery consumer takes messages: its blueprint runs with every step
    started (the event loop, started last, included) and it holds a broker connection. After a lost
    connection Celery restarts the consumer's steps and blocks reconnecting, and a consumer that
    stopped has left RUN: either way the worker process (and its heartbeat thread) lives on while
    nothing is consumed."""
    from celery.bootsteps import RUN

    consumer = getattr(worker, "consumer", None)
    blueprint = getattr(consumer, "blueprint", None)
    if blueprint is None:
        return False
    return (blueprint.state == RUN and blueprint.started == len(consumer.steps)
            and getattr(consumer, "connection", None) is not None)


# --- the heartbeat thread ----------------------------------------------------------------------

def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class HeartbeatThread:
    """Beats at once, then every interval, from a daemon thread of the worker's main process; on
    stop, says goodbye. Never raises into the worker: PostgreSQL away is logged once per outage
    and the beats go on being tried."""

    def __init__(self, rows: list[WorkerIdentity], *, pid: int, concurrency: int,
                 started_at: datetime | None = None, counters: JobCounters = JOBS,
                 interval: float | None = None, memory: Callable[[int], int] = tree_rss_bytes,
                 consuming: Callable[[], bool] = lambda: True) -> None:
        self.rows = rows
        self.pid = pid
        self.concurrency = concurrency
        self.counters = counters
        self.interval = settings.HEARTBEAT_INTERVAL_SECONDS if interval is None else interval
        self.memory = memory
        self.consuming = consuming
        self.reported_consuming: bool | None = None  # what the last beat said
        self.consumed_before = False  # has this worker's consumer run yet?
        self.started_at = started_at or timezone.now()
        self.failing_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_WAIT_SECONDS) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("heartbeat thread did not finish within %g s; the rows of %s will expire by "
                           "themselves", timeout, ", ".join(row.name for row in self.rows))

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            self.beat_once()
            # A beat that took long (PostgreSQL slow or away) is followed by the next at once, not by
            # a burst making up for the missed ones.
            if self._wait_for_next_beat(started):
                break
        self.goodbye()

    def _wait_for_next_beat(self, started: float) -> bool:
        """Sleep until the next beat is due, or until the consumer starts or stops (so a worker
        shows live as soon as it consumes, and not live as soon as it stops); True when stopping."""
        while True:
            left = self.interval - (time.monotonic() - started)
            if left <= 0:
                return False
            if self._stop.wait(min(left, CONSUMER_CHECK_SECONDS)):
                return True
            if self._consuming() != self.reported_consuming:
                return False

    def _consuming(self) -> bool:
        try:
            return bool(self.consuming())
        except Exception:  # a Celery internal moved: say not consuming rather than kill the beats
            logger.debug("consumer state unknown", exc_info=True)
            return False

    def beat_once(self) -> bool:
        per_queue = len(self.rows) > 1  # a single-queue worker owns all its counts
        consuming = self._consuming()
        try:
            memory = self.memory(self.pid)
            for row in self.rows:
                counts = self.counters.snapshot(row.queue if per_queue else None)
                beat(name=row.name, pool=row.pool, queue=row.queue, host=row.host, pid=self.pid,
                     concurrency=self.concurrency, started_at=self.started_at, jobs_done=counts.done,
                     jobs_failed=counts.failed, jobs_rejected=counts.rejected, last_job_at=counts.last_job_at,
                     memory_bytes=memory, consuming=consuming)
        except Exception as exc:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
                logger.warning("heartbeat of %s not written (%s); trying again every %g s",
                               ", ".join(row.name for row in self.rows), first_line(exc), self.interval,
                               exc_info=True)
            return False
        finally:
            self._close_connection()
        # A starting worker is not consuming until its consumer is up: no news. A change is said when
        # a consumer that ran stops, and when it runs again after that.
        changed = self.reported_consuming is not None and consuming != self.reported_consuming
        if changed and (self.consumed_before or not consuming):
            logger.warning("%s: consumer %s", ", ".join(row.name for row in self.rows),
                           "running again" if consuming else "not running (broker connection lost or consumer "
                           "stopped): not counted as a live consumer")
        self.reported_consuming = consuming
        self.consumed_before = self.consumed_before or consuming
        if self.failing_since is not None:
            logger.warning("heartbeats written again after %.0f s", time.monotonic() - self.failing_since)
            self.failing_since = None
        return True

    def goodbye(self) -> None:
        try:
            for row in self.rows:
                say_goodbye(row.name, pid=self.pid)
        except Exception as exc:
            logger.warning("could not mark %s stopped (%s); its heartbeat expires within %g s",
                           ", ".join(row.name for row in self.rows), first_line(exc),
                           settings.HEARTBEAT_TTL_SECONDS, exc_info=True)
        finally:
            self._close_connection()

    @staticmethod
    def _close_connection() -> None:
        # Open, write, close at every beat: this main process forks pool children at any time (a
        # dead child or one over --max-memory-per-child is replaced), and a connection kept open
        # here would be inherited by each of them, two processes on one PostgreSQL session. It
        # also means a restarted PostgreSQL costs one beat, not a broken connection kept forever.
        with contextlib.suppress(Exception):
            connection.close()
