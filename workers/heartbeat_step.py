"""The worker bootstep that runs the heartbeat thread (workers.heartbeat) as long as the worker runs."""
from __future__ import annotations

import os

from celery import bootsteps

from workers.heartbeat import HeartbeatThread, consumer_running, identities


class Heartbeat(bootsteps.StartStopStep):
    """A worker bootstep (resilience/celery.py): the heartbeat thread lives as long as the worker.

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



