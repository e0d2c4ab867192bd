"""Pausing a queue on purpose: the dispatcher stops publishing its jobs (running ones finish), and
the health rules show it as paused rather than unhealthy."""
from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from workers import wakeup
from workers.models import QueuePause


def check_queue(queue: str) -> str:
    if queue not in settings.QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; the queues are {', '.join(settings.QUEUE_NAMES)}")
    return queue


def pause_queue(queue: str, reason: str, paused_by: str = "") -> tuple[QueuePause, bool]:
    """Returns the pause and whether it is new (pausing a paused queue keeps the first reason)."""
    check_queue(queue)
    if not reason.strip():
        raise ValueError("a reason is required: it tells others why the queue is not running")
    try:
        with transaction.atomic():
            return QueuePause.objects.create(queue=queue, reason=reason.strip(), paused_by=paused_by), True
    except IntegrityError:
        return QueuePause.objects.get(queue=queue), False


def resume_queue(queue: str) -> bool:
    """Returns False when the queue was not paused."""
    check_queue(queue)
    deleted, _ = QueuePause.objects.filter(queue=queue).delete()
    if deleted:
        wakeup.nudge()  # its waiting jobs may go now
    return bool(deleted)


def paused_queues() -> dict[str, QueuePause]:
    return {pause.queue: pause for pause in QueuePause.objects.all()}
