"""Who may do what: session callers need Django's model permission for each request (view to read,
change to resolve and requeue, delete to delete); a refusal is a JSON 403 naming the permission and
changes nothing. Tokens have no model permissions: each operation needs its scope."""
import json

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone

from access.auth import create_token
from dlq.models import DeadLetter
from workers.models import Job

pytestmark = pytest.mark.django_db

DLQ_URL = "/api/admin/dead-letter-queue"
REQUEUE_URL = "/api/admin/dead-letter-queue/requeue"


def session(*codenames: str, name: str = "staffer") -> Client:
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def an_entry(**fields) -> DeadLetter:
    job = Job.objects.create(queue="delivery", task="workers.probe", payload={}, state="dead",
                             next_attempt_at=timezone.now())
    return DeadLetter.objects.create(queue_name="delivery", job_id=str(job.id), job_data={"email": "jane@acme.io"},
                                     error_message="boom", **fields)


def resolve(client, entry, resolved=True):
    return client.patch(DLQ_URL, data=json.dumps({"id": str(entry.id), "resolved": resolved}),
                        content_type="application/json")


def requeue(client, entry):
    return client.post(REQUEUE_URL, data=json.dumps({"id": str(entry.id)}), content_type="application/json")


def delete(client, entry):
    return client.delete(f"{DLQ_URL}?id={entry.id}")


def assert_refused(response, permission):
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["success"] is False and body["missingPermission"] == permission
    assert permission in body["error"]


def test_staff_without_permissions_may_neither_read_nor_change_the_dead_letter_queue():
    client = session()
    entry = an_entry()

    listing = client.get(DLQ_URL)
    assert_refused(listing, "dlq.view_deadletter")
    assert b"jane@acme.io" not in listing.content
    assert_refused(resolve(client, entry), "dlq.change_deadletter")
    assert_refused(requeue(client, entry), "dlq.change_deadletter")
    assert_refused(delete(client, entry), "dlq.delete_deadletter")

    entry.refresh_from_db()
    assert entry.resolved is False and Job.objects.get(pk=entry.job_id).state == "dead"


def test_view_permission_reads_but_cannot_reopen_resolve_requeue_or_delete():
    client = session("view_deadletter")
    closed = an_entry(resolved=True, resolved_by="alice")
    open_ = an_entry()

    assert client.get(DLQ_URL).json()["total"] == 1
    assert_refused(resolve(client, closed, resolved=False), "dlq.change_deadletter")
    assert_refused(resolve(client, open_), "dlq.change_deadletter")
    assert_refused(requeue(client, open_), "dlq.change_deadletter")
    assert_refused(delete(client, open_), "dlq.delete_deadletter")

    closed.refresh_from_db()
    assert closed.resolved is True and closed.resolved_by == "alice"
    assert DeadLetter.objects.count() == 2


def test_change_permission_resolves_and_requeues_but_does_not_delete(redis_client):
    client = session("change_deadletter")
    first, second = an_entry(), an_entry()

    assert resolve(client, first).status_code == 200
    assert requeue(client, second).status_code == 200
    assert_refused(delete(client, first), "dlq.delete_deadletter")
    assert Job.objects.get(pk=second.job_id).state == "pending"
    assert DeadLetter.objects.count() == 2


def test_delete_permission_deletes():
    client = session("delete_deadletter")
    entry = an_entry()
    assert delete(client, entry).status_code == 200
    assert not DeadLetter.objects.exists()


def test_permissions_granted_through_a_group_count():
    user = User.objects.create_user("grouped", password="x", is_staff=True)
    group = Group.objects.create(name="on-call")
    group.permissions.add(Permission.objects.get(codename="view_deadletter"))
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    assert client.get(DLQ_URL).status_code == 200


def test_a_superuser_needs_no_explicit_permission():
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="x"))
    entry = an_entry()
    assert client.get(DLQ_URL).status_code == 200
    assert delete(client, entry).status_code == 200


@pytest.mark.parametrize("url", ["/api/admin/workers/health", "/metrics"])
def test_health_and_metrics_need_the_permission_to_view_jobs(url):
    assert_refused(session().get(url), "workers.view_job")
    assert session("view_job", name="watcher").get(url).status_code == 200


def test_the_dashboard_and_its_data_need_the_permissions_to_view_jobs_and_dead_letters():
    an_entry()
    nobody = session()
    page = nobody.get("/admin/workers/")
    assert page.status_code == 403 and "workers.view_job" in page.content.decode()
    assert b"jane@acme.io" not in page.content and b"wd-data" not in page.content
    assert_refused(nobody.get("/admin/workers/data"), "workers.view_job")
    assert b"Worker dashboard</a>" not in nobody.get("/admin/").content  # no link to a page it may not see

    jobs_only = session("view_job", name="jobs-only")
    assert jobs_only.get("/admin/workers/").status_code == 403
    assert_refused(jobs_only.get("/admin/workers/data"), "dlq.view_deadletter")

    both = session("view_job", "view_deadletter", name="both")
    assert both.get("/admin/workers/").status_code == 200
    assert both.get("/admin/workers/data").json()["deadLetterUnresolved"] == 1
    assert b"Worker dashboard</a>" in both.get("/admin/").content


def assert_lacks_scope(response, scope):
    assert response.status_code == 403, response.content
    body = response.json()
    assert f"lacks the scope {scope}" in body["error"] and body["missingScope"] == scope, body


def test_each_token_operation_needs_its_scope_and_nothing_more(redis_client):
    entry = an_entry()
    reader = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('monitor')[1]}")  # read: the default
    fixer = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('ops', scopes=['dlq'])[1]}")
    deliverer = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('crm', scopes=['read', 'deliver'])[1]}")

    assert reader.get(DLQ_URL).status_code == 200
    assert reader.get("/metrics").status_code == 200
    assert_lacks_scope(resolve(reader, entry), "dlq")
    assert_lacks_scope(requeue(reader, entry), "dlq")
    assert_lacks_scope(delete(reader, entry), "dlq")
    assert_lacks_scope(requeue(deliverer, entry), "dlq")
    assert_lacks_scope(fixer.get(DLQ_URL), "read")  # read is a scope of its own, not implied
    entry.refresh_from_db()
    assert entry.resolved is False and not Job.objects.filter(state="pending").exists()

    assert requeue(fixer, entry).status_code == 200
    assert delete(fixer, entry).status_code == 200


def test_admin_api_refuses_a_write_that_declares_only_the_read_scope():
    from access.auth import Scope, admin_api

    with pytest.raises(TypeError, match="need a scope other than read"):
        @admin_api({"POST": "dlq.change_deadletter"}, scope=Scope.READ)
        def view(request):  # pragma: no cover - never called
            raise AssertionError
    with pytest.raises(ValueError):
        admin_api({"GET": ""}, scope="reed")
    with pytest.raises(TypeError, match="needs the scope"):
        admin_api({"GET": ""})


def test_a_method_the_view_does_not_serve_is_405_for_sessions_too():
    response = session("view_job").post("/api/admin/workers/health")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


def test_admin_api_without_permissions_fails_at_import_not_at_the_first_request():
    from access.auth import admin_api

    with pytest.raises(TypeError, match="permission per method"):
        @admin_api
        def view(request):  # pragma: no cover - never called
            raise AssertionError
