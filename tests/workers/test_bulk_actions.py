"""Bulk actions on the ledger's admin by filter: cancel jobs not started, run waiting jobs now; a count and a
confirmation page, the cap, each row in the admin history, and who may do it."""
import base64
import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.utils import timezone

from workers import ledger
from workers.dispatcher import dispatch_due_jobs
from workers.models import Job
from workers.probe import enqueue_probe, probe_starts, run_probe
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/workers/job/"


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def by_filter(client, query: str, action: str, **extra):
    """The action on everything the filter `query` selects (the change list's "Select all" link)."""
    some = Job.objects.values_list("pk", flat=True).first()
    return client.post(f"{CHANGELIST}?{query}", {"action": action, "select_across": "1", "index": "0",
                                                  "_selected_action": [str(some)], **extra}, follow=True)


def confirm(client, query: str, page, **extra):
    """Submit the confirmation page as its form would."""
    ctx = page.context
    data = {"action": ctx["action_name"], "select_across": "1" if ctx["select_across"] else "0",
            "_selected_action": [str(pk) for pk in ctx["selected"]], "confirmed_count": str(ctx["count"]),
            "post": "yes", **extra}
    return client.post(f"{CHANGELIST}?{query}", data, follow=True)


def published(redis_client, queue: str) -> list[tuple[str, int]]:
    """(job id, dispatch token) of each message waiting in Redis for `queue`, as the worker would read them."""
    found = []
    for raw in redis_client.lrange(queue, 0, -1):
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        found.append((args[0], args[1]))
    return found


def test_cancel_by_filter_cancels_jobs_not_started_and_a_published_message_then_claims_nothing(admin_client,
                                                                                                  redis_client):
    waiting = enqueue_probe("delivery")
    published_job = enqueue_probe("delivery")
    Job.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert dispatch_due_jobs().published == 1  # published_job's message is in Redis now
    [(message_job, token)] = published(redis_client, "delivery")
    assert message_job == str(published_job.id)
    running = enqueue_probe("delivery")
    [claimed] = ledger.take_due_jobs("delivery", 1)
    assert ledger.claim(claimed.job_id, claimed.token, "elsewhere") is not None  # running now
    other_queue = enqueue_probe("lead-processing")

    page = by_filter(admin_client, "queue__exact=delivery", "cancel_selected")
    html = page.content.decode()
    assert page.context["count"] == 3 and "The current filter selects" in html and "<strong>3 jobs</strong>" in html
    assert "2 jobs not started (pending, retry or dispatched) will be cancelled" in html
    assert "1 job is running and will not be cancelled: a job that has started runs to its end" in html
    assert Job.objects.filter(state="cancelled").count() == 0  # nothing before the confirmation

    done = confirm(admin_client, "queue__exact=delivery", page)
    assert "Cancelled 2 jobs." in texts(done)
    assert any("1 job was not cancelled: running" in text for text in texts(done))
    states = dict(Job.objects.values_list("id", "state"))
    assert states[waiting.id] == states[published_job.id] == "cancelled"
    assert states[running.id] == "running" and states[other_queue.id] == "pending"
    logged = LogEntry.objects.filter(action_flag=CHANGE, change_message="Cancelled before it started")
    assert sorted(logged.values_list("object_id", flat=True)) == sorted([str(waiting.id), str(published_job.id)])

    # The worker takes the message that was already in Redis: the cancelled job is refused, its effect never runs.
    assert run_job(message_job, token, worker="test", handler=run_probe) == "skipped"
    assert probe_starts(message_job) == 0
    assert Job.objects.get(pk=published_job.pk).state == "cancelled"
    # Nor does the dispatcher ever publish it again.
    Job.objects.filter(pk=published_job.pk).update(dispatched_at=timezone.now() - timedelta(hours=1))
    assert ledger.redispatch_stale(older_than=0) == 0
    assert dispatch_due_jobs().by_queue.get("delivery", 0) == 0


def test_run_now_makes_a_job_waiting_on_its_backoff_due_and_the_dispatcher_takes_it(admin_client, redis_client):
    job = enqueue_probe("email-sending")
    Job.objects.filter(pk=job.pk).update(state="retry", attempts=1,
                                         next_attempt_at=timezone.now() + timedelta(minutes=30))
    assert dispatch_due_jobs().published == 0

    page = by_filter(admin_client, "state__exact=retry", "run_now_selected")
    assert "1 job waiting on a backoff or a delay will be due now" in page.content.decode()
    done = confirm(admin_client, "state__exact=retry", page)
    assert "1 job is due now." in texts(done)
    assert LogEntry.objects.filter(object_id=str(job.id), change_message="Run now: its wait was cut short").exists()
    assert dispatch_due_jobs().by_queue == {"email-sending": 1}
    assert Job.objects.get(pk=job.pk).state == "dispatched"


def test_a_filter_selecting_more_than_the_cap_is_refused_with_its_count(admin_client, settings):
    settings.BULK_ACTION_MAX = 2
    jobs = [enqueue_probe("delivery") for _ in range(3)]
    for action in ("cancel_selected", "run_now_selected", "delete_selected"):
        done = by_filter(admin_client, "queue__exact=delivery", action)
        assert ("The selection holds 3 jobs; one action may touch at most 2 (BULK_ACTION_MAX): narrow the filter. "
                "Nothing was changed.") in texts(done)
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) == {"pending"}


def test_a_filter_that_grew_after_the_confirmation_is_not_acted_on(admin_client):
    enqueue_probe("delivery")
    page = by_filter(admin_client, "queue__exact=delivery", "cancel_selected")
    enqueue_probe("delivery")
    done = confirm(admin_client, "queue__exact=delivery", page)
    assert "The filter selects 2 now, not the 1 you confirmed: look at it again. Nothing was changed." in texts(done)
    assert not Job.objects.filter(state="cancelled").exists()


def test_staff_who_may_only_view_jobs_are_not_offered_the_actions_and_are_refused(client, redis_client):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    job = enqueue_probe("delivery")
    html = client.get(CHANGELIST).content.decode()
    assert "cancel_selected" not in html and "run_now_selected" not in html
    for action in ("cancel_selected", "run_now_selected"):
        client.post(CHANGELIST, {"action": action, "_selected_action": [str(job.pk)], "post": "yes",
                                 "select_across": "0"})
    assert Job.objects.get(pk=job.pk).state == "pending" and not LogEntry.objects.exists()


def test_staff_with_the_change_permission_may_cancel(client, redis_client):
    user = User.objects.create_user("operator", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    client.force_login(user)
    job = enqueue_probe("delivery")
    page = client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [str(job.pk)], "index": "0"})
    assert page.status_code == 200 and page.context["count"] == 1
    confirm(client, "", page)
    assert Job.objects.get(pk=job.pk).state == "cancelled"


def test_cancel_not_started_leaves_running_and_finished_jobs(redis_client):
    pending, running, done = (enqueue_probe("delivery") for _ in range(3))
    Job.objects.filter(pk=running.pk).update(state="running")
    Job.objects.filter(pk=done.pk).update(state="succeeded")
    assert ledger.cancel_not_started([str(j.id) for j in (pending, running, done)]) == [str(pending.id)]
    cancelled = Job.objects.get(pk=pending.pk)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None


def test_a_queues_cancel_hook_runs_in_the_cancels_transaction(redis_client):
    """workers.registry.on_cancel: the app's hook gets the queue's cancelled ids, and a hook that fails
    undoes the cancel (the job and its row never disagree)."""
    from workers import registry

    email_job = ledger.enqueue("email-sending", "x", {})
    lead_job = ledger.enqueue("lead-processing", "y", {})
    seen: list[list[str]] = []
    original = registry.cancel_hook("email-sending")
    try:
        registry.on_cancel("email-sending", seen.append)
        assert ledger.cancel_not_started([str(email_job.id)]) == [str(email_job.id)]
        assert seen == [[str(email_job.id)]]

        def broken(job_ids):
            raise RuntimeError("the app could not mark its rows")

        registry.on_cancel("lead-processing", broken)
        with pytest.raises(RuntimeError):
            ledger.cancel_not_started([str(lead_job.id)])
        assert Job.objects.get(pk=lead_job.id).state == Job.State.PENDING
    finally:
        registry.on_cancel("email-sending", original.handler)
        from leads import services as lead_services
        registry.on_cancel("lead-processing", lead_services.cancel_submissions)


def test_a_cancel_hook_for_an_unconfigured_queue_is_refused():
    from workers import registry

    with pytest.raises(ValueError, match="not configured"):
        registry.on_cancel("no-such-queue", lambda job_ids: None)
