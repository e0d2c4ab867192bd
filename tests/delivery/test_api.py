"""POST/GET /api/admin/leads/<id>/deliver: start (once) and read a lead's delivery run; every refusal a JSON 4xx."""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client

from access.auth import create_token
from delivery.models import DeliveryRun
from leads.models import Lead
from workers.models import Job

pytestmark = pytest.mark.django_db


def url(lead_id) -> str:
    return f"/api/admin/leads/{lead_id}/deliver"


def post(client, lead_id, **extra):
    return client.post(url(lead_id), content_type="application/json", **extra)  # body: {}


@pytest.fixture
def api(redis_client) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token('crm', scopes=['read', 'deliver'])[1]}")


def session(*codenames: str) -> Client:
    user = User.objects.create_user("staffer", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def assert_json_error(response, status, *words):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False, body
    for word in words:
        assert word in body["error"], body["error"]


def test_post_starts_the_run_once_and_records_who_did_it(api, lead):
    first = api.generic("POST", url(lead.pk))  # no body at all, as `curl -X POST` sends
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["success"] and body["created"]
    run = body["run"]
    assert (run["lead_id"], run["state"], run["current_step"], run["started_by"]) == (lead.pk, "running", 1, "token:crm")
    assert [(s["position"], s["name"], s["state"]) for s in run["steps"]] == [
        (1, "publish_site", "pending"), (2, "send_handover_email", "pending"), (3, "notify_team", "pending"),
        (4, "mark_delivered", "pending")]
    assert run["steps"][0]["job_id"] == str(Job.objects.get(queue="delivery").id)

    again = api.post(url(lead.pk), data="{}", content_type="application/json")
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["run"]["id"] == run["id"] and DeliveryRun.objects.count() == 1
    assert Job.objects.filter(queue="delivery").count() == 1

    history = LogEntry.objects.order_by("pk")
    assert [(e.action_flag, e.object_repr.split(" (")[0], e.change_message) for e in history] == [
        (CHANGE, "won@acme.io", f"Marked won; delivery run {run['id']} started (through the API)"),
        (ADDITION, f"delivery {run['id']} of lead {lead.pk}", "Started (through the API)"),
    ]
    assert {e.user.username for e in history} == {"token:crm"}


def test_a_lead_that_will_never_have_a_site_is_refused_naming_why(api):
    # Disqualified at scoring: lead processing enqueued no site-generation job, so no site will come.
    lead = Lead.objects.create(email="cold@acme.io", status="disqualified", score=20)
    assert_json_error(post(api, lead.pk), 409, f"lead {lead.pk} has no site and no site-generation job",
                      "disqualified (score 20)")
    assert not DeliveryRun.objects.exists() and not Job.objects.exists()
    assert Lead.objects.get(pk=lead.pk).won_at is None and not LogEntry.objects.exists()


def test_get_reads_the_run_and_its_steps(api, lead):
    assert_json_error(api.get(url(lead.pk)), 404, f"lead {lead.pk} has no delivery run")
    post(api, lead.pk)
    response = api.get(url(lead.pk))
    assert response.status_code == 200 and response.json()["run"]["steps"][0]["title"] == "Publish the site"


@pytest.mark.parametrize("lead_id, words", [
    (999, ["no lead 999"]),
    (10 ** 30, ["no lead"]),  # beyond bigint: a 404, not a database error
])
def test_an_unknown_lead_is_404(api, lead_id, words):
    assert_json_error(post(api, lead_id), 404, *words)
    assert_json_error(api.get(url(lead_id)), 404, *words)
    assert not DeliveryRun.objects.exists()


def test_a_lead_id_that_is_not_a_number_is_a_json_404(api):
    assert_json_error(api.post("/api/admin/leads/abc/deliver"), 404, "no API endpoint")


@pytest.mark.parametrize("raw, content_type, status, words", [
    ('{"lead": 3}', "application/json", 400, ["unknown field(s) lead"]),
    ("[]", "application/json", 400, ["JSON object"]),
    ("{", "application/json", 400, ["not valid JSON"]),
    ("a=b", "application/x-www-form-urlencoded", 415, ["application/json"]),
])
def test_a_body_other_than_an_empty_object_is_refused(api, lead, raw, content_type, status, words):
    assert_json_error(api.post(url(lead.pk), data=raw, content_type=content_type), status, *words)
    assert not DeliveryRun.objects.exists()


def test_other_methods_are_405(api, lead):
    assert_json_error(api.delete(url(lead.pk)), 405, "DELETE is not allowed")


def test_sessions_need_the_model_permission_per_method_and_tokens_the_deliver_scope(lead, redis_client):
    assert_json_error(Client().post(url(lead.pk)), 401, "authentication required")
    nobody = session()
    assert_json_error(nobody.get(url(lead.pk)), 403, "delivery.view_deliveryrun")
    assert_json_error(post(nobody, lead.pk), 403, "delivery.add_deliveryrun")
    reader = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('monitor')[1]}")
    assert_json_error(post(reader, lead.pk), 403, "lacks the scope deliver")
    # The dead letters' scope is not the deliveries'.
    dlq_only = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('dlq-script', scopes=['read', 'dlq'])[1]}")
    assert_json_error(post(dlq_only, lead.pk), 403, "lacks the scope deliver")
    assert not DeliveryRun.objects.exists() and Lead.objects.get().won_at is None


def test_a_session_with_the_permission_starts_it_with_the_csrf_check(lead, redis_client):
    user = User.objects.create_user("seller", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_deliveryrun"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert_json_error(post(client, lead.pk), 403, "CSRF")
    client.get("/admin/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = post(client, lead.pk, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201 and response.json()["run"]["started_by"] == "seller"
