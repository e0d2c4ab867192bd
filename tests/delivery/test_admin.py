"""Admin: "mark won" on leads starts one run per lead; runs show their steps; the dashboard lists runs in progress."""
import html
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client

from delivery import services
from delivery.models import DeliveryRun, DeliveryStep
from leads.models import Lead
from sites.services import enqueue_site_generation
from tests.delivery.conftest import run_due_steps

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def mark_won(client, *leads):
    return client.post("/admin/leads/lead/", {"action": "mark_won", "_selected_action": [l.pk for l in leads]},
                       follow=True)


def test_mark_won_starts_one_run_per_lead_and_says_so(admin_client, lead):
    other = Lead.objects.create(email="other@acme.io", status="qualified", score=70)
    enqueue_site_generation(other)
    page = mark_won(admin_client, lead, other).content.decode()
    assert "Marked won and started delivery of 2 lead(s)." in page
    assert DeliveryRun.objects.count() == 2 and set(DeliveryRun.objects.values_list("started_by", flat=True)) == {"root"}
    assert LogEntry.objects.filter(change_message__startswith="Marked won; delivery run").count() == 2

    page = mark_won(admin_client, lead).content.decode()
    assert "1 lead(s) already had a delivery run" in page and DeliveryRun.objects.count() == 2
    run = DeliveryRun.objects.get(lead=lead)
    change = admin_client.get(f"/admin/leads/lead/{lead.pk}/change/").content.decode()
    assert f'<a href="/admin/delivery/deliveryrun/{run.pk}/change/">running, step 1</a>' in change
    third = Lead.objects.create(email="third@acme.io", status="qualified", score=70)
    assert "none (not marked won)" in admin_client.get(f"/admin/leads/lead/{third.pk}/change/").content.decode()


def test_mark_won_refuses_each_lead_that_will_never_have_a_site_naming_why(admin_client, lead):
    cold = Lead.objects.create(email="cold@acme.io", status="disqualified", score=20)
    page = html.unescape(mark_won(admin_client, lead, cold).content.decode())
    assert "Marked won and started delivery of 1 lead(s)." in page
    assert (f"Not marked won, no delivery started for cold@acme.io: lead {cold.pk} has no site and no "
            f"site-generation job: it is disqualified (score 20)") in page
    assert list(DeliveryRun.objects.values_list("lead", flat=True)) == [lead.pk]
    assert Lead.objects.get(pk=cold.pk).won_at is None
    assert not LogEntry.objects.filter(object_id=str(cold.pk)).exists()


def test_mark_won_needs_the_permission_to_start_runs(lead, redis_client):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "change_lead"]))
    client = Client()
    client.force_login(user)
    assert b"mark_won" not in client.get("/admin/leads/lead/").content
    mark_won(client, lead)
    assert not DeliveryRun.objects.exists()
    user.user_permissions.add(Permission.objects.get(codename="add_deliveryrun"))
    user = User.objects.get(pk=user.pk)
    client.force_login(user)
    assert b"mark_won" in client.get("/admin/leads/lead/").content


@pytest.mark.django_db(transaction=True)
def test_a_run_shows_its_steps_with_state_attempts_and_timings(admin_client, lead, executions):
    run, _ = services.start_delivery(lead.pk, by="root")
    run_due_steps()
    DeliveryRun.objects.create(lead=Lead.objects.create(email="b@acme.io", status="qualified", score=60))
    page = admin_client.get(f"/admin/delivery/deliveryrun/{run.pk}/change/").content.decode()
    for text in ("Publish the site (publish_site)", "Mark delivered (mark_delivered)", "delivered"):
        assert text in page, text
    assert len(re.findall(r'<td class="field-took">\s*<p>\d+\.\d\d s</p>', page)) == 4  # each step's time
    for step in DeliveryStep.objects.filter(run=run):
        assert f"/admin/workers/job/{step.job_id}/change/" in page
    listing = admin_client.get("/admin/delivery/deliveryrun/?state__exact=delivered").content.decode()
    assert "won@acme.io" in listing and "4 of 4: Mark delivered" in listing and "b@acme.io" not in listing
    at_step = admin_client.get("/admin/delivery/deliveryrun/?at_step=1").content.decode()
    assert "b@acme.io" in at_step and "won@acme.io" not in at_step


def test_the_dashboard_lists_runs_in_progress_to_those_who_may_view_them(admin_client, lead):
    run, _ = services.start_delivery(lead.pk, by="root")
    data = admin_client.get("/admin/workers/data").json()["deliveryRuns"]
    assert data["inProgress"] == 1
    [shown] = data["runs"]
    assert (shown["id"], shown["lead"], shown["step"], shown["steps"], shown["stepName"], shown["stepState"]) == (
        run.pk, "won@acme.io", 1, 4, "Publish the site", "pending")
    assert shown["adminUrl"] == f"/admin/delivery/deliveryrun/{run.pk}/change/"
    DeliveryStep.objects.filter(run=run, position=1).update(waits=3, waiting_for="the site of lead 1 is not made yet")
    [shown] = admin_client.get("/admin/workers/data").json()["deliveryRuns"]["runs"]
    assert (shown["stepState"], shown["lastError"]) == ("waiting", "the site of lead 1 is not made yet")
    DeliveryRun.objects.filter(pk=run.pk).update(state="delivered")
    assert admin_client.get("/admin/workers/data").json()["deliveryRuns"]["inProgress"] == 0

    user = User.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "view_deadletter"]))
    ops = Client()
    ops.force_login(user)
    assert ops.get("/admin/workers/data").json()["deliveryRuns"] is None
