"""The leader's duties: everything the dispatcher's leader does besides dispatching and reaping (the
gates' sweeps, pruning, folding the job counts, noticing a Redis restart, its own heartbeat), each on
its own interval, run one after another on a thread of their own.

On their own thread so that none can hold the dispatch round, nor keep the leader's lock session
silent (workers.leader: PostgreSQL ends a session idle for DISPATCHER_LEADER_TIMEOUT_SECONDS); each
turn is bounded twice: the duty does a slice of work and says when more is left, and its statements
run under statement_timeout = the duty's slice, so a query that hangs ends instead of starving the
duties after it. A duty that raises is logged (once per failing streak) and tried at its next turn;
the others go on.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connection

from workers import registry
from workers.registry import Duty

logger = logging.getLogger(__name__)

# A duty that stopped with more to do gets its next turn this soon: the others' turns come between.
MORE_TO_DO_SECONDS = 0.2
# How long the thread sleeps at most between looks at what is due (a stop is heard at once).
IDLE_CHECK_SECONDS = 1.0


class DutyRunner:
    def __init__(self, duties: Callable[[], list[Duty]] = registry.duties,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.duties = duties
        self.clock = clock
        self.next_at: dict[str, float] = {}
        self.failing: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one pass (the thread's loop, and tests) ------------------------------------------------

    def run_due(self) -> list[str]:
        """Run each duty that is due, once; returns their names. A duty is due at once when the
        runner starts (the first leader of a restarted system prunes, sweeps and beats at once)."""
        ran = []
        for duty in self.duties():
            if self._stop.is_set():
                break
            if self.clock() < self.next_at.get(duty.name, 0.0):
                continue
            more = self._turn(duty)
            self.next_at[duty.name] = self.clock() + (MORE_TO_DO_SECONDS if more else duty.every)
            ran.append(duty.name)
        return ran

    def _turn(self, duty: Duty) -> bool:
        try:
            close_old_connections()
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = %s", [max(1, int(duty.slice_seconds * 1000))])
            more = bool(duty.run())
        except Exception as exc:
            if duty.name not in self.failing:
                self.failing.add(duty.name)
                logger.warning("the leader's duty %r failed (%s); trying again in %g s", duty.name,
                               (str(exc).strip().splitlines() or [type(exc).__name__])[0], duty.every,
                               exc_info=True)
            close_old_connections()
            return False
        if duty.name in self.failing:
            self.failing.discard(duty.name)
            logger.warning("the leader's duty %r works again", duty.name)
        return more

    def seconds_to_next(self) -> float:
        pending = [self.next_at.get(duty.name, 0.0) for duty in self.duties()]
        return max(0.0, min(pending, default=IDLE_CHECK_SECONDS) - self.clock())

    # --- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.next_at.clear()
        self._thread = threading.Thread(target=self._run, name="leader-duties", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 10.0) -> None:
        """Stop after the turn under way (bounded by its statement_timeout)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(wait)
            if thread.is_alive():
                logger.warning("the leader's duties did not stop within %g s", wait)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.run_due()
                self._stop.wait(min(IDLE_CHECK_SECONDS, self.seconds_to_next()))
        finally:
            connection.close()  # this thread's own connection
