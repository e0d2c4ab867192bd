"""Delivery step jobs against real PostgreSQL, the task called directly (no broker)."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from delivery import services
from delivery.models import DeliveryRun, DeliveryStep
from delivery.tasks import run_step
from dlq import actions
from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead
from sites.models import Site
from tests.delivery.conftest import make_site, run_due_steps
from workers import ledger
from workers.errors import PermanentError
from workers.models import Job, JobFailure
from workers.outside import Attempt
from workers.pausing import pause_queue, resume_queue

pytestmark = pytest.mark.django_db(transaction=True)

STEP_NAMES = ["publish_site", "send_handover_email", "notify_team", "mark_delivered"]


def states(run: DeliveryRun) -> list[str]:
    return list(run.steps.order_by("position").values_list("state", flat=True))


def test_a_won_lead_is_delivered_through_every_step_in_order(lead, executions, site_ready):
    run, _ = services.start_delivery(lead.pk, by="alice")

    assert run_due_steps() == ["succeeded"] * 4

    run.refresh_from_db()
    assert run.state == "delivered" and run.current_step == 4 and run.finished_at is not None
    assert executions.counts == {name: 1 for name in STEP_NAMES}
    site = Site.objects.get(lead=lead)
    assert site_ready == [site.pk]  # published once
    steps = list(run.steps.order_by("position"))
    assert [(s.state, s.attempts) for s in steps] == [("done", 1)] * 4
    assert all(s.started_at <= s.finished_at for s in steps)
    assert steps[0].result == {"site_id": site.pk, "url": site.public_url}
    key = f"delivery-run-{run.pk}-send_handover_email"
    assert steps[1].result["idempotency_key"] == key
    # The handover email is queued once, to the lead, with the site's link.
    [handover] = Message.objects.filter(key=key)
    assert handover.to_email == lead.email and steps[1].result["message_id"] == str(handover.pk)
    assert handover.links == [site.public_url]  # tracked: the click leads to the site
    # One job per step, each started by the completion of the one before.
    jobs = Job.objects.filter(queue="delivery").order_by("created_at")
    assert [j.payload["step"] for j in jobs] == STEP_NAMES and {j.state for j in jobs} == {"succeeded"}
    assert [s.job_id for s in steps] == [j.id for j in jobs]
    lead.refresh_from_db()
    assert lead.delivered_at is not None and lead.won_at <= lead.delivered_at


def test_a_step_marked_done_never_runs_again(lead, executions):
    run, _ = services.start_delivery(lead.pk, by="alice")
    [first] = ledger.take_due_jobs("delivery", 10)
    assert run_step.run(first.job_id, first.token) == "succeeded"
    # The same message delivered again: the ledger refuses it.
    assert run_step.run(first.job_id, first.token) == "skipped"
    # The job itself run again (as if the ledger had lost its completion): the step row refuses it.
    Job.objects.filter(pk=first.job_id).update(state="pending")
    [again] = [d for d in ledger.take_due_jobs("delivery", 10) if d.job_id == first.job_id]
    assert run_step.run(again.job_id, again.token) == "succeeded"
    assert executions.counts["publish_site"] == 1
    assert DeliveryStep.objects.get(run=run, position=1).attempts == 1


def test_a_worker_that_dies_mid_step_resumes_at_that_step_without_repeating_the_done_ones(lead, executions):
    run, _ = services.start_delivery(lead.pk, by="alice")
    assert run_due_steps(rounds=1) == ["succeeded"]  # step 1 done
    [second] = ledger.take_due_jobs("delivery", 10)
    # The worker claims step 2, marks it running (committed), then dies before recording it.
    job = ledger.claim(second.job_id, second.token, "delivery@primary.dead")
    with transaction.atomic():
        services.StepWork().prepare(Attempt(str(job.id), job.queue, job.payload, job.dispatch_token, job.attempts, "k"))
    run.refresh_from_db()
    assert run.current_step == 2 and states(run) == ["done", "running", "pending", "pending"]
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert ledger.reap_expired_leases() == 1

    assert run_due_steps() == ["succeeded"] * 3

    run.refresh_from_db()
    assert run.state == "delivered"
    assert executions.counts == {"publish_site": 1, "send_handover_email": 1, "notify_team": 1, "mark_delivered": 1}
    assert list(run.steps.order_by("position").values_list("attempts", flat=True)) == [1, 2, 1, 1]


def test_a_step_that_keeps_failing_dead_letters_the_run_and_a_requeue_continues_from_it(lead, executions):
    run, _ = services.start_delivery(lead.pk, by="alice")
    executions.failing["notify_team"] = ConnectionError("team chat unreachable")

    assert run_due_steps() == ["succeeded", "succeeded", "retry", "retry", "dead"]

    run.refresh_from_db()
    assert (run.state, run.current_step) == ("failed", 3)
    assert states(run) == ["done", "done", "failed", "pending"]
    assert "team chat unreachable" in DeliveryStep.objects.get(run=run, position=3).last_error
    entry = DeadLetter.objects.get()
    assert entry.error_message.startswith("delivery step 3 of 4 (notify_team) failed: ConnectionError")
    assert entry.job_data["step"] == "notify_team" and entry.job_data["delivery"]["position"] == 3
    assert run.error == entry.error_message

    del executions.failing["notify_team"]
    actions.requeue(entry.pk, by="alice")
    run.refresh_from_db()
    assert (run.state, run.current_step) == ("running", 3)

    assert run_due_steps() == ["succeeded", "succeeded"]

    run.refresh_from_db()
    assert run.state == "delivered" and run.error == ""
    assert executions.counts == {"publish_site": 1, "send_handover_email": 1, "notify_team": 4, "mark_delivered": 1}
    assert list(run.steps.order_by("position").values_list("state", "attempts")) == [
        ("done", 1), ("done", 1), ("done", 4), ("done", 1)]


def test_a_permanent_failure_dead_letters_at_once(lead, executions):
    run, _ = services.start_delivery(lead.pk, by="alice")
    executions.failing["send_handover_email"] = PermanentError("the lead has no address to hand over to")
    assert run_due_steps() == ["succeeded", "dead"]
    run.refresh_from_db()
    assert (run.state, run.current_step) == ("failed", 2)
    assert "(send_handover_email)" in DeadLetter.objects.get().error_message


def run_waiting_round() -> list[str]:
    """One round of the delivery workers with every delivery job due, a waiting one included."""
    Job.objects.filter(queue="delivery", state__in=Job.WAITING_STATES).update(next_attempt_at=Now())
    return [run_step.run(d.job_id, d.token) for d in ledger.take_due_jobs("delivery", 10)]


def wait_asked(job: Job) -> float:
    """The wait the job's last postponement asked for (both times are set by the same UPDATE)."""
    return (job.next_attempt_at - job.updated_at).total_seconds()


def test_a_delivery_waits_for_a_site_paused_by_the_budget_with_growing_waits_and_goes_on_once_it_exists(lead):
    # The lead's site-generation job is pending and its queue paused by the daily budget until 00:00 UTC.
    pause_queue("site-generation", "budget: $5.0000 spent today (UTC) reached AI_DAILY_BUDGET_USD=$5.00")
    run, _ = services.start_delivery(lead.pk, by="alice")
    [job] = Job.objects.filter(queue="delivery")

    waits = []
    for _ in range(job.max_attempts * 4):  # many more rounds than the job has attempts
        assert run_waiting_round() == ["deferred"]
        job.refresh_from_db()
        assert (job.state, job.attempts) == ("pending", 0)  # no attempt counted
        waits.append(wait_asked(job))

    assert waits == [30, 60, 120, 240, 480] + [900] * (len(waits) - 5)  # long, growing, then capped
    assert not DeadLetter.objects.exists() and not JobFailure.objects.filter(job_id=job.pk).exists()
    run.refresh_from_db()
    step = run.steps.get(position=1)
    assert (run.state, run.current_step, run.error) == ("running", 1, "")
    assert (step.state, step.attempts, step.waits, step.last_error) == ("pending", 0, len(waits), "")
    assert step.waiting_for == (f"the site of lead {lead.pk} is not made yet (its site-generation job is pending; "
                                f"site-generation is paused: budget: $5.0000 spent today (UTC) reached "
                                f"AI_DAILY_BUDGET_USD=$5.00)")

    # 00:00 UTC: the pause is lifted and site generation makes the site; the next check goes on.
    resume_queue("site-generation")
    make_site(lead)
    assert run_due_steps() == []  # not due yet: it waits the time it asked for
    assert run_waiting_round() == ["succeeded"]
    assert run_due_steps() == ["succeeded"] * 3
    run.refresh_from_db()
    step = run.steps.get(position=1)
    assert run.state == "delivered" and not DeadLetter.objects.exists()
    assert (step.state, step.attempts, step.waiting_for) == ("done", 1, "")


@pytest.mark.parametrize("site_job_state", ["pending", "retry", "dispatched", "running"])
def test_a_site_still_to_be_made_is_waited_for_whatever_its_job_is_doing(lead, site_job_state):
    Job.objects.filter(queue="site-generation").update(state=site_job_state)
    services.start_delivery(lead.pk, by="alice")
    assert run_waiting_round() == ["deferred"]
    [step] = DeliveryStep.objects.filter(position=1)
    assert step.waits == 1 and f"its site-generation job is {site_job_state})" in step.waiting_for


def test_a_dead_site_job_still_fails_the_delivery_naming_it(lead):
    run, _ = services.start_delivery(lead.pk, by="alice")
    assert run_waiting_round() == ["deferred"]  # waited while the site job was pending
    site_job = Job.objects.get(queue="site-generation")
    Job.objects.filter(pk=site_job.pk).update(state="dead")
    assert run_waiting_round() == ["retry"]
    assert run_due_steps() == ["retry", "dead"]
    run.refresh_from_db()
    assert (run.state, run.current_step) == ("failed", 1)
    step = run.steps.get(position=1)
    assert (step.state, step.waits, step.waiting_for) == ("failed", 1, "")  # failed, no longer waiting
    assert (f"SiteNotReady: lead {lead.pk} has no site: its site-generation job {site_job.pk} is dead-lettered; "
            f"requeue it, then this delivery") in run.error
    assert Lead.objects.get(pk=lead.pk).delivered_at is None


def test_a_lead_with_no_site_job_at_all_dead_letters_at_once_naming_why(lead):
    run, _ = services.start_delivery(lead.pk, by="alice")
    Job.objects.filter(queue="site-generation").delete()  # as for a run started before runs were refused
    assert run_due_steps() == ["dead"]
    run.refresh_from_db()
    assert (run.state, run.current_step) == ("failed", 1)
    assert f"NoSiteComing: lead {lead.pk} has no site and no site-generation job" in run.error


def test_a_step_whose_run_was_deleted_is_a_permanent_failure(lead, executions):
    run, _ = services.start_delivery(lead.pk, by="alice")
    DeliveryRun.objects.filter(pk=run.pk).delete()
    assert run_due_steps() == ["dead"]
    assert "MissingResource" in DeadLetter.objects.get().error_message
