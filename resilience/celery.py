"""The Celery app: configuration comes from Django settings (CELERY_* names)."""
from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init
from kombu import Exchange, Queue

from resilience.env import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
load_settings_or_exit()

from django.conf import settings  # noqa: E402 - settings must load (or fail in one line) first

# Every task runs one ledger job; its task class ends a job's attempt as soon as its pool child dies.
app = Celery("resilience", task_cls="workers.worker_signals:LedgerJobTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in settings.QUEUE_NAMES]
app.steps["worker"].add("workers.worker_steps:NoticeDeadChildrenPromptly")
app.steps["worker"].add("workers.worker_steps:Heartbeat")
# Built (not started) before the pool forks: shared pages stay shared; a dead previous process's jobs are released.
app.steps["worker"].add("workers.worker_steps:FreezeHeapBeforeFork")
app.steps["worker"].add("workers.worker_steps:ReleasePreviousLife")
app.steps["worker"].add("workers.worker_steps:MemoryCapWithoutChildren")
app.autodiscover_tasks()


@worker_init.connect
def _no_health_check_per_job(**kwargs) -> None:
    # Before the pool forks: children and threads connect without a SELECT 1 before every job.
    from workers.runner import skip_connection_health_checks

    skip_connection_health_checks()
