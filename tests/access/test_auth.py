"""The admin API's gate (access.auth.admin_api) seen from outside: tokens, sessions, CSRF, and the
admin pages' own login redirect."""
import hashlib
import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client

from access.models import ApiToken
from dlq.models import DeadLetter

pytestmark = pytest.mark.django_db

DLQ_URL = "/api/admin/dead-letter-queue"


def make_token(name="ops", *flags) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", name, *flags, stdout=out, stderr=err)
    return out.getvalue().strip()


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def an_entry() -> DeadLetter:
    return DeadLetter.objects.create(queue_name="delivery", job_id="j1", job_data={}, error_message="boom")


def staff(name: str, *codenames: str) -> User:
    """A staff user with the given dead-letter permissions (view_deadletter, change_deadletter ...)."""
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def patch(client, body, **headers):
    return client.patch(DLQ_URL, data=json.dumps(body), content_type="application/json", **headers)


def test_create_api_token_prints_the_token_once_and_stores_only_its_hash():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "prometheus", "--scope", "read", stdout=out, stderr=err)

    printed = out.getvalue().splitlines()
    assert len(printed) == 1  # stdout is the token alone, so `token=$(manage.py create_api_token x)` works
    token = printed[0]
    assert token.startswith("rsl_") and len(token) > 40
    assert token not in err.getvalue() and "shown only this once" in err.getvalue()
    stored = ApiToken.objects.get(name="prometheus")
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.scopes == ["read"] and stored.prefix == token[:8]
    assert all(token not in str(value) for value in ApiToken.objects.values().get().values())


def test_a_bearer_token_reads_the_dead_letter_queue(client):
    token = make_token()
    response = client.get(DLQ_URL, **bearer(token))
    assert response.status_code == 200 and response.json()["success"] is True
    assert ApiToken.objects.get(name="ops").last_used_at is not None


@pytest.mark.parametrize("header", ["Bearer rsl_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "rsl_no_scheme",
                                    "Bearer rsl_\ud800"])
def test_a_wrong_token_is_401_json_with_www_authenticate(client, header):
    make_token()
    response = client.get(DLQ_URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_is_401(client):
    token = make_token("old")
    assert client.get(DLQ_URL, **bearer(token)).status_code == 200
    call_command("revoke_api_token", "old", stdout=io.StringIO())
    response = client.get(DLQ_URL, **bearer(token))
    assert response.status_code == 401 and "revoked" in response.json()["error"]
    assert "WWW-Authenticate" in response


@pytest.mark.parametrize("flags, scopes", [
    ((), ["read"]),  # a new token only reads unless told otherwise
    (("--read-only",), ["read"]),  # the flag the docs gave before scopes
    (("--scope", "dlq"), ["dlq"]),
    (("--scope", "read", "--scope", "dlq"), ["read", "dlq"]),
    (("--scope", "admin,read, deliver"), ["read", "deliver", "admin"]),
    (("--scope", "dlq,dlq", "--scope", "read,dlq,deliver,admin"), ["read", "dlq", "deliver", "admin"]),
])
def test_create_api_token_stores_the_scopes_asked_for(flags, scopes):
    make_token("t", *flags)
    assert ApiToken.objects.get(name="t").scopes == scopes


@pytest.mark.parametrize("flags, words", [
    (("--scope", "write"), "unknown scope 'write': choose from read, dlq, deliver, admin"),
    (("--scope", "read,DLQ"), "unknown scope 'DLQ'"),
    (("--scope", ","), "--scope needs a scope"),
    (("--read-only", "--scope", "dlq"), "--read-only is --scope read"),
])
def test_create_api_token_refuses_a_scope_it_does_not_know_in_one_line(flags, words):
    with pytest.raises(CommandError) as raised:
        make_token("t", *flags)
    assert words in str(raised.value) and "\n" not in str(raised.value)
    assert not ApiToken.objects.exists()


def test_a_read_only_token_may_read_but_not_change(client):
    token = make_token("monitor", "--read-only")
    entry = an_entry()
    assert client.get(DLQ_URL, **bearer(token)).status_code == 200
    response = patch(client, {"id": str(entry.id), "resolved": True}, **bearer(token))
    assert response.status_code == 403 and response.json()["missingScope"] == "dlq"
    assert response.json()["error"] == ("API token 'monitor' lacks the scope dlq (it has read): "
                                        "make one with create_api_token NAME --scope dlq")
    assert client.delete(f"{DLQ_URL}?id={entry.id}", **bearer(token)).status_code == 403
    entry.refresh_from_db()
    assert entry.resolved is False


def test_a_write_token_changes_without_csrf_and_is_recorded_as_the_actor():
    client = Client(enforce_csrf_checks=True)  # a token request carries no cookie, so no CSRF check applies
    token = make_token("ops", "--scope", "dlq")
    entry = an_entry()
    response = patch(client, {"id": str(entry.id), "resolved": True}, **bearer(token))
    assert response.status_code == 200 and response.json()["job"]["resolved_by"] == "token:ops"


def test_anonymous_is_401_json(client):
    response = client.get(DLQ_URL)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json" and response.json()["success"] is False
    assert "WWW-Authenticate" in response


def test_a_logged_in_user_who_is_not_staff_is_403_json(client):
    client.force_login(User.objects.create_user("visitor", password="x"))
    response = client.get(DLQ_URL)
    assert response.status_code == 403 and "not staff" in response.json()["error"]


def test_a_staff_session_with_the_permissions_reads_and_changes(client):
    client.force_login(staff("alice", "view_deadletter", "change_deadletter"))
    entry = an_entry()
    assert client.get(DLQ_URL).status_code == 200
    response = patch(client, {"id": str(entry.id), "resolved": True})
    assert response.status_code == 200 and response.json()["job"]["resolved_by"] == "alice"


def test_a_session_change_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff("alice", "view_deadletter", "change_deadletter"))
    entry = an_entry()

    response = patch(client, {"id": str(entry.id), "resolved": True})
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    entry.refresh_from_db()
    assert entry.resolved is False

    # What the dashboard does: the session's CSRF cookie sent back in X-CSRFToken.
    assert client.get("/admin/").status_code == 200
    csrf = client.cookies["csrftoken"].value
    response = patch(client, {"id": str(entry.id), "resolved": True}, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200 and response.json()["job"]["resolved"] is True


def test_an_oversized_form_body_on_a_session_is_413_json(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff("bob", "change_deadletter"))
    client.get("/admin/")  # the CSRF cookie: the check then reads the form body for its token
    response = client.post("/api/admin/dead-letter-queue/requeue", data={"notes": "x" * 4096})
    assert response.status_code == 413 and response.json()["error"] == "body is larger than 1024 bytes"


@pytest.mark.parametrize("path", ["/admin/", "/admin/workers/", "/admin/dlq/deadletter/"])
def test_admin_pages_send_anonymous_visitors_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/") and "next=" in response["Location"]
