"""The dispatcher leader's own heartbeat row."""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from workers.heartbeat import beat, first_line, say_goodbye
from workers.models import WorkerHeartbeat
from workers.processes import tree_rss_bytes

logger = logging.getLogger(__name__)


class LeaderHeartbeat:
    """The dispatcher leader's heartbeat row (pool WorkerHeartbeat.DISPATCHER_POOL, no queue), written
    from the leader's own loop (Dispatcher.tick) every HEARTBEAT_INTERVAL_SECONDS: a leader whose loop
    is stuck stops beating, and no live leader makes the whole system unhealthy. Never raises."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = settings.HEARTBEAT_INTERVAL_SECONDS if interval is None else interval
        self.host = socket.gethostname()
        self.name = f"dispatcher@{self.host}"
        self.pid = os.getpid()
        self.started_at: datetime | None = None  # when this process last became leader
        self.last_beat: float | None = None
        self.failing = False

    def beat_if_due(self) -> None:
        now = time.monotonic()
        if self.last_beat is not None and now - self.last_beat < self.interval:
            return
        self.last_beat = now
        self.started_at = self.started_at or timezone.now()
        try:
            beat(name=self.name, pool=WorkerHeartbeat.DISPATCHER_POOL, queue="", host=self.host, pid=self.pid,
                 concurrency=0, started_at=self.started_at, memory_bytes=tree_rss_bytes(self.pid))
        except Exception as exc:
            if not self.failing:
                logger.warning("dispatcher leader heartbeat not written (%s); trying again every %g s",
                               first_line(exc), self.interval)
                self.failing = True
            return
        self.failing = False

    def goodbye(self) -> None:
        """No longer the leader (leadership lost, or stopping): the row stops counting at once."""
        if self.started_at is None:
            return
        self.started_at, self.last_beat = None, None
        try:
            say_goodbye(self.name, pid=self.pid)
        except Exception as exc:
            logger.warning("could not mark %s stopped (%s); its heartbeat expires within %g s", self.name,
                           first_line(exc), settings.HEARTBEAT_TTL_SECONDS)
