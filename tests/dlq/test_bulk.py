"""Dead-letter entries in bulk by filter: the admin's requeue on everything a filter selects (count,
confirmation, cap, history), and the API's bulk requeue / resolve."""
import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.utils import timezone

from access.auth import create_token
from dlq.models import DeadLetter
from tests.dlq.test_admin_actions import dead_probe
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/dlq/deadletter/"
BULK = "/api/admin/dead-letter-queue/bulk"


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def dead_with_error(queue: str, error: str) -> DeadLetter:
    entry = dead_probe(queue)
    DeadLetter.objects.filter(pk=entry.pk).update(error_message=error)
    return entry


def test_requeue_everything_a_filter_selects_from_the_admin(admin_client):
    hits = [dead_with_error("site-generation", "APIStatusError: 529 overloaded") for _ in range(3)]
    other_error = dead_with_error("site-generation", "InvalidData: no company")
    other_queue = dead_with_error("delivery", "APIStatusError: 529 overloaded")
    query = "queue_name__exact=site-generation&q=529"
    some = str(hits[0].pk)

    page = admin_client.post(f"{CHANGELIST}?{query}", {"action": "requeue_selected", "select_across": "1",
                                                       "index": "0", "_selected_action": [some]})
    html = page.content.decode()
    assert page.status_code == 200 and page.context["count"] == 3
    assert "The current filter selects" in html and "3 unresolved entries: each one" in html
    assert set(Job.objects.values_list("state", flat=True)) == {"dead"}  # not before the confirmation

    done = admin_client.post(f"{CHANGELIST}?{query}", {
        "action": "requeue_selected", "select_across": "1", "_selected_action": [some],
        "confirmed_count": "3", "post": "yes"}, follow=True)
    assert "Requeued 3 jobs; their entries are marked resolved." in texts(done)
    assert set(Job.objects.filter(pk__in=[e.job_id for e in hits]).values_list("state", flat=True)) == {"pending"}
    assert Job.objects.get(pk=other_error.job_id).state == Job.objects.get(pk=other_queue.job_id).state == "dead"
    assert LogEntry.objects.filter(action_flag=CHANGE, change_message__startswith="Requeued ledger job").count() == 3


def test_the_admin_refuses_a_filter_over_the_cap_for_every_action(admin_client, settings):
    settings.BULK_ACTION_MAX = 1
    entries = [dead_probe() for _ in range(2)]
    for action in ("requeue_selected", "resolve_selected", "delete_selected"):
        done = admin_client.post(CHANGELIST, {"action": action, "select_across": "1", "index": "0",
                                              "_selected_action": [str(entries[0].pk)]}, follow=True)
        assert ("The selection holds 2 dead-letter entries; one action may touch at most 1 (BULK_ACTION_MAX): "
                "narrow the filter. Nothing was changed.") in texts(done)
    assert DeadLetter.objects.filter(resolved=False).count() == 2


def api(client, body, **headers):
    return client.post(BULK, json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def token_headers(db):
    _, secret = create_token("ops", scopes=["read", "dlq"])
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_the_api_requeues_and_resolves_by_filter_with_a_dry_run_first(client, redis_client, token_headers):
    hits = [dead_with_error("site-generation", "APIStatusError: 529 overloaded") for _ in range(2)]
    old = dead_with_error("site-generation", "APIStatusError: 529 overloaded")
    DeadLetter.objects.filter(pk=old.pk).update(failed_at=timezone.now() - timedelta(days=1))
    other = dead_with_error("delivery", "SMTP 421")
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    selection = {"queue": "site-generation", "error_contains": "529", "failed_after": since}

    dry = api(client, {"action": "requeue", **selection, "dry_run": True}, **token_headers)
    assert dry.status_code == 200 and dry.json() == {"success": True, "action": "requeue", "matched": 2,
                                                     "dry_run": True}
    assert set(Job.objects.values_list("state", flat=True)) == {"dead"}

    done = api(client, {"action": "requeue", **selection, "notes": "Anthropic was overloaded"}, **token_headers)
    assert done.status_code == 200, done.content
    assert done.json()["requeued"] == 2 and done.json()["refused"] == []
    assert set(Job.objects.filter(pk__in=[e.job_id for e in hits]).values_list("state", flat=True)) == {"pending"}
    assert Job.objects.get(pk=old.job_id).state == "dead"
    assert LogEntry.objects.filter(change_message__startswith="Requeued ledger job").count() == 2

    resolved = api(client, {"action": "resolve", "queue": "delivery", "notes": "relay fixed"}, **token_headers)
    assert resolved.json()["resolved"] == 1
    entry = DeadLetter.objects.get(pk=other.pk)
    assert entry.resolved and entry.notes == "relay fixed" and entry.resolved_by == "token:ops"
    assert Job.objects.get(pk=other.job_id).state == "dead"  # resolving does not run it


def test_the_api_refuses_a_filter_over_the_cap_and_changes_nothing(client, redis_client, token_headers, settings):
    settings.BULK_ACTION_MAX = 1
    dead_probe(), dead_probe()
    response = api(client, {"action": "requeue"}, **token_headers)
    assert response.status_code == 409
    assert response.json()["error"] == ("the filter selects 2 unresolved entries; one request may act on at most 1 "
                                        "(BULK_ACTION_MAX): narrow the filter")
    assert DeadLetter.objects.filter(resolved=False).count() == 2


@pytest.mark.parametrize("body, words", [
    ({}, "action must be one of requeue, resolve"),
    ({"action": "delete"}, "action must be one of requeue, resolve"),
    ({"action": "requeue", "queue": "nope"}, "unknown queue 'nope'"),
    ({"action": "requeue", "queue": 5}, "queue must be a string"),
    ({"action": "requeue", "failed_after": "yesterday"}, "failed_after must be an ISO 8601 date and time"),
    ({"action": "requeue", "failed_before": "2026-12-07T10:00:00"}, "failed_before must be an ISO 8601"),
    ({"action": "requeue", "error_contains": " "}, "error_contains must not be empty"),
    ({"action": "requeue", "dry_run": "yes"}, "dry_run must be true or false"),
    ({"action": "requeue", "ids": []}, "unknown field 'ids'"),
])
def test_the_api_names_what_is_wrong_with_the_body(client, redis_client, token_headers, body, words):
    response = api(client, body, **token_headers)
    assert response.status_code == 400 and words in response.json()["error"], response.content


@pytest.mark.parametrize("moment", ["8838-03-13T12:43:06+18:51", "0001-01-01T00:30:00+01:00"])
def test_a_moment_python_reads_but_postgresql_would_refuse_is_compared_in_utc_or_named(client, redis_client,
                                                                                   token_headers, moment):
    """Found by schemathesis: a zone offset past 15:59 (valid ISO 8601, refused by PostgreSQL) was a 500."""
    response = api(client, {"action": "resolve", "dry_run": True, "failed_before": moment}, **token_headers)
    if moment.startswith("0001"):  # before the first UTC moment there is: no such time to compare with
        assert response.status_code == 400 and "failed_before must be an ISO 8601" in response.json()["error"]
    else:
        assert response.status_code == 200 and response.json()["matched"] == 0, response.content


def test_staff_who_may_only_view_entries_are_refused(client, redis_client):
    entry = dead_probe()
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(user)
    response = api(client, {"action": "requeue"})
    assert response.status_code == 403 and "dlq.change_deadletter" in response.json()["error"]
    assert not DeadLetter.objects.get(pk=entry.pk).resolved
