"""The runtime finds the project's Celery app by name (settings.WORKERS_CELERY_APP), and it is the
configured one: its broker, its queues, the ledger's task class on every app's task. Celery's default
app (what a bare `celery.current_app` or a shared task falls back to) has none of them."""
import json
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from delivery.services import STEP_TASK
from emails.services import SEND_TASK
from leads.services import LEAD_TASK
from sites.services import SITE_TASK
from workers import dispatcher
from workers.celery_app import celery_app
from workers.ledger import Dispatch
from workers.probe import PROBE_TASK
from workers.worker_signals import LedgerJobTask


def test_the_named_app_is_the_configured_one(settings):
    app = celery_app()
    assert app.main == "resilience"
    assert app.conf.broker_url == settings.CELERY_BROKER_URL  # the default app's is amqp://guest@localhost
    assert [queue.name for queue in app.conf.task_queues] == list(settings.QUEUE_NAMES)


def test_every_apps_task_is_bound_to_it_with_the_ledgers_task_class():
    """The apps declare their tasks with celery.shared_task (they import no composition root); the
    app's task_cls must still apply, or a dead pool child would leave its job's attempt running."""
    app = celery_app()
    app.loader.import_default_modules()  # as a worker does at start: every installed app's tasks module
    for name in (LEAD_TASK, SITE_TASK, SEND_TASK, STEP_TASK, PROBE_TASK):
        task = app.tasks[name]
        assert isinstance(task, LedgerJobTask), name
        assert task.app is app, name


def test_the_dispatcher_publishes_on_the_configured_broker_and_queue(redis_client):
    job_id = str(uuid.uuid4())
    dispatcher.publish(Dispatch(job_id, SITE_TASK, "site-generation", 3))
    [raw] = redis_client.lrange("site-generation", 0, -1)
    message = json.loads(raw)
    assert (message["headers"]["id"], message["headers"]["task"]) == (job_id, SITE_TASK)
    assert message["properties"]["delivery_info"]["routing_key"] == "site-generation"


def test_a_setting_that_names_no_celery_app_is_refused(settings):
    settings.WORKERS_CELERY_APP = "django.conf:settings"
    with pytest.raises(ImproperlyConfigured, match="WORKERS_CELERY_APP='django.conf:settings' names a"):
        celery_app()
