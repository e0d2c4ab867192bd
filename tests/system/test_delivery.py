"""Delivery workflows with real processes: a worker killed mid-step, a step that fails for good.

Given: two worker pools ("primary" and "backup") on the delivery queue, with every step's execution
counted (tests.system.delivery_steps), and a dispatcher.
When: the worker running a run's second step is SIGKILLed mid-step; or a step fails permanently, is
dead-lettered, and is requeued from the dead-letter queue once it can succeed.
Then: the run finishes; the steps done before the crash or the failure never run again; only the
interrupted (or failed) step runs a second time.
"""
import re
import signal
import time

import pytest

from delivery.models import DeliveryRun
from delivery.services import STEP_TASK, start_delivery
from dlq import actions
from dlq.models import DeadLetter
from leads.models import Lead
from resilience.celery import app
from tests.delivery.conftest import make_site
from tests.system.delivery_steps import FAIL, SLOW, executions
from tests.system.processes import wait_for
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
QUEUE = "delivery"
POOLS = ("primary", "backup")


def start_pools(processes) -> None:
    processes.configure(LOG_LEVEL="INFO")
    for pool in POOLS:
        processes.worker(QUEUE, pool, 1, include="tests.system.delivery_steps")
    processes.dispatcher("primary")
    for pool in POOLS:
        processes.wait_ready(f"{QUEUE}@{pool}")


_SKIPPED = re.compile(rf"Task {re.escape(STEP_TASK)}\[[0-9a-f-]+\] succeeded in [^:]+: 'skipped'")


def skipped_messages(processes) -> int:
    """Step messages the workers found nothing to do for (from Celery's log of each result)."""
    return sum(len(_SKIPPED.findall(processes.log_text(name))) for name in processes.procs)


def won_lead(email: str) -> DeliveryRun:
    lead = Lead.objects.create(email=email, company="Acme", status="qualified", score=80)
    make_site(lead)
    run, created = start_delivery(lead.pk, by="test")
    assert created
    return run


def run_state(run: DeliveryRun) -> tuple[str, int]:
    run.refresh_from_db()
    return run.state, run.current_step


def wait_state(run: DeliveryRun, state: str, timeout: float, processes) -> None:
    assert wait_for(lambda: run_state(run)[0] == state, timeout), (
        run_state(run), list(run.steps.values_list("name", "state", "attempts", "last_error")), processes.logs())


def attempts(run: DeliveryRun) -> list[tuple[str, int]]:
    return list(run.steps.order_by("position").values_list("state", "attempts"))


def test_a_worker_killed_mid_step_resumes_at_that_step_without_repeating_the_done_ones(processes, redis_client):
    start_pools(processes)
    redis_client.hset(SLOW, "send_handover_email", 30)
    run = won_lead("killed@acme.io")
    second = run.steps.get(position=2)

    assert wait_for(lambda: executions(run.pk)["send_handover_email"] == 1, 30), processes.logs()
    second.refresh_from_db()
    job = Job.objects.get(pk=second.job_id)
    assert job.state == "running" and run_state(run) == ("running", 2)
    victim = job.worker.rsplit(".", 1)[0]  # delivery@primary.<host> -> delivery@primary
    redis_client.hdel(SLOW, "send_handover_email")  # the next attempt is quick
    processes.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    assert processes.wait_exit(victim, 5) == -signal.SIGKILL

    wait_state(run, "delivered", 3 + 30, processes)
    print(f"\nMEASURED delivery resumed and finished {time.monotonic() - killed_at:.1f}s after the kill (lease 3 s)")
    assert executions(run.pk) == {"publish_site": 1, "send_handover_email": 2, "notify_team": 1,
                                  "mark_delivered": 1}
    assert attempts(run) == [("done", 1), ("done", 2), ("done", 1), ("done", 1)]
    assert Lead.objects.get(pk=run.lead_id).delivered_at is not None
    step_jobs = Job.objects.filter(task=STEP_TASK)
    assert step_jobs.count() == 4 and set(step_jobs.values_list("state", flat=True)) == {"succeeded"}
    assert Job.objects.get(pk=job.pk).worker.split("@")[1].split(".")[0] != victim.split("@")[1]

    # Every message any step job ever had, delivered once more: all skipped, no step runs again.
    before, sent = skipped_messages(processes), 0
    for step_job in step_jobs:
        for token in range(1, step_job.dispatch_token + 1):
            app.send_task(STEP_TASK, args=[str(step_job.id), token], task_id=str(step_job.id), queue=QUEUE,
                          routing_key=QUEUE)
            sent += 1
    assert wait_for(lambda: skipped_messages(processes) - before >= sent, 20), processes.logs()
    assert executions(run.pk)["send_handover_email"] == 2 and executions(run.pk)["publish_site"] == 1


def test_a_dead_lettered_step_requeued_continues_from_that_step(processes, redis_client):
    start_pools(processes)
    redis_client.sadd(FAIL, "notify_team")
    run = won_lead("failing@acme.io")

    wait_state(run, "failed", 30, processes)
    assert run_state(run) == ("failed", 3)
    entry = DeadLetter.objects.get(queue_name=QUEUE)
    assert entry.error_message.startswith("delivery step 3 of 4 (notify_team) failed: PermanentError")
    assert entry.job_data["step"] == "notify_team"
    assert executions(run.pk) == {"publish_site": 1, "send_handover_email": 1, "notify_team": 1, "mark_delivered": 0}

    redis_client.srem(FAIL, "notify_team")
    actions.requeue(entry.pk, by="test")

    wait_state(run, "delivered", 30, processes)
    assert executions(run.pk) == {"publish_site": 1, "send_handover_email": 1, "notify_team": 2, "mark_delivered": 1}
    assert attempts(run) == [("done", 1), ("done", 1), ("done", 2), ("done", 1)]
    entry.refresh_from_db()
    assert entry.resolved
