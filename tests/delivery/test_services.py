"""Delivery services without a broker: starting a run, one run per lead, failing and resuming at a step."""
import threading

import pytest
from django.db import IntegrityError, connection

from delivery import services
from delivery.models import DeliveryRun, DeliveryStep
from dlq.services import record_dead_letter
from leads.models import Lead
from sites.services import enqueue_site_generation
from tests.delivery.conftest import make_site
from workers.models import Job

pytestmark = pytest.mark.django_db

STEP_NAMES = ["publish_site", "send_handover_email", "notify_team", "mark_delivered"]


def test_starting_a_delivery_marks_the_lead_won_and_queues_the_first_step_only(lead):
    run, created = services.start_delivery(lead.pk, by="alice")

    assert created and run.state == "running" and run.current_step == 1 and run.started_by == "alice"
    steps = list(run.steps.order_by("position"))
    assert [(s.position, s.name, s.state, s.attempts) for s in steps] == [
        (i, name, "pending", 0) for i, name in enumerate(STEP_NAMES, 1)]
    [job] = Job.objects.filter(queue="delivery")
    assert (job.queue, job.task, job.state) == ("delivery", "delivery.run_step", "pending")
    assert job.payload == {"run_id": run.pk, "step_id": steps[0].pk, "step": "publish_site", "position": 1}
    assert steps[0].job_id == job.id and steps[1].job_id is None
    lead.refresh_from_db()
    assert lead.won_at is not None and lead.delivered_at is None


def test_starting_twice_returns_the_existing_run_and_queues_nothing_more(lead):
    first, _ = services.start_delivery(lead.pk, by="alice")
    won_at = Lead.objects.get(pk=lead.pk).won_at
    again, created = services.start_delivery(lead.pk, by="bob")
    assert not created and again.pk == first.pk and again.started_by == "alice"
    assert DeliveryRun.objects.count() == 1 and DeliveryStep.objects.count() == 4
    assert Job.objects.filter(queue="delivery").count() == 1
    assert Lead.objects.get(pk=lead.pk).won_at == won_at  # the first time it was won


def test_one_run_per_lead_is_a_constraint_not_a_check(lead):
    services.start_delivery(lead.pk, by="alice")
    with pytest.raises(IntegrityError):
        DeliveryRun.objects.create(lead=lead)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_starts_make_one_run():
    lead = Lead.objects.create(email="race@acme.io", status="qualified", score=80)
    enqueue_site_generation(lead)
    barrier = threading.Barrier(4)
    outcomes = []

    def start():
        barrier.wait()
        try:
            run, created = services.start_delivery(lead.pk, by="x")
            outcomes.append((run.pk, created))
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({pk for pk, _ in outcomes}) == 1 and sorted(c for _, c in outcomes) == [False, False, False, True]
    assert Job.objects.filter(queue="delivery").count() == 1


def test_an_unknown_lead_is_refused():
    with pytest.raises(services.LeadNotFound, match="no lead 999"):
        services.start_delivery(999, by="alice")
    assert not DeliveryRun.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize("status, why", [
    ("disqualified", "it is disqualified (score 20), and only a qualified lead's site is generated"),
    ("qualified", "it is qualified but never went through lead processing (or its site was deleted after its job "
                  "was pruned)"),
])
def test_a_lead_with_no_site_and_no_site_generation_job_is_refused_before_it_is_won(status, why):
    lead = Lead.objects.create(email="cold@acme.io", status=status, score=20)
    with pytest.raises(services.NoSiteComing) as refused:
        services.start_delivery(lead.pk, by="alice")
    assert str(refused.value) == f"lead {lead.pk} has no site and no site-generation job: {why}"
    assert not DeliveryRun.objects.exists() and not Job.objects.exists()
    assert Lead.objects.get(pk=lead.pk).won_at is None


def test_a_lead_with_its_site_starts_even_once_its_site_job_was_pruned():
    lead = Lead.objects.create(email="made@acme.io", status="qualified", score=80)
    make_site(lead)  # its finished site-generation job is gone from the ledger (retention)
    run, created = services.start_delivery(lead.pk, by="alice")
    assert created and run.state == "running"


def test_a_lead_that_has_a_run_gets_it_back_whatever_became_of_its_site(lead):
    first, _ = services.start_delivery(lead.pk, by="alice")
    Job.objects.filter(queue="site-generation").delete()
    again, created = services.start_delivery(lead.pk, by="bob")
    assert not created and again.pk == first.pk


def test_a_dead_step_fails_the_run_at_that_step_and_a_requeue_resumes_it_there(lead):
    run, _ = services.start_delivery(lead.pk, by="alice")
    steps = list(run.steps.order_by("position"))
    DeliveryStep.objects.filter(pk__in=[steps[0].pk, steps[1].pk]).update(state="done")
    DeliveryStep.objects.filter(pk=steps[2].pk).update(state="running", attempts=3)
    entry = record_dead_letter(queue_name="delivery", job_id="j", job_data={"step_id": steps[2].pk},
                               error_message="ConnectionError: boom", error_stack="", attempts_made=3)

    services.fail_run_at_step(steps[2].pk, entry)

    run.refresh_from_db()
    assert (run.state, run.current_step) == ("failed", 3)
    assert run.error == "delivery step 3 of 4 (notify_team) failed: ConnectionError: boom"
    entry.refresh_from_db()
    assert entry.error_message == run.error
    assert entry.job_data["delivery"] == {"run_id": run.pk, "lead_id": lead.pk, "step": "notify_team",
                                          "position": 3, "steps": 4}
    assert list(run.steps.order_by("position").values_list("state", flat=True)) == [
        "done", "done", "failed", "pending"]

    services.resume_run_at_step(steps[2].pk)

    run.refresh_from_db()
    assert (run.state, run.current_step, run.error) == ("running", 3, "")
    assert list(run.steps.order_by("position").values_list("state", "attempts")) == [
        ("done", 0), ("done", 0), ("pending", 3), ("pending", 0)]


def test_the_step_key_is_stable_per_run_and_step():
    assert services.step_key(7, "notify_team") == services.step_key(7, "notify_team") == "delivery-run-7-notify_team"
    assert services.step_key(7, "notify_team") != services.step_key(8, "notify_team")
