"""/api/admin/dead-letter-queue and its /requeue: the contract's JSON shapes, every refusal as a
JSON 4xx, and a requeued entry running again. Dead jobs are made the real way: through the ledger."""
import json
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.utils import timezone

from access.auth import create_token
from access.models import ApiToken
from dlq import actions
from dlq.models import DeadLetter
from leads.models import Lead, LeadSubmission
from leads.services import accept_leads
from leads.tasks import process_lead
from workers import ledger
from workers.errors import PermanentError
from workers.models import Job
from workers.probe import enqueue_probe, run_probe
from workers.runner import run_job
from tests.secret_samples import SAMPLE_IDS, SAMPLES

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/admin/dead-letter-queue"
REQUEUE_URL = "/api/admin/dead-letter-queue/requeue"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ENTRY_FIELDS = {"id", "queue_name", "job_id", "job_data", "error_message", "error_stack", "attempts_made",
                "failed_at", "resolved", "resolved_at", "resolved_by", "notes"}


# --- given ---------------------------------------------------------------------------------------

def run_due(queue: str, handler=run_probe) -> list[str]:
    """What the workers do with each published message, in this process (no broker)."""
    return [run_job(d.job_id, d.token, worker="test", handler=handler) for d in ledger.take_due_jobs(queue, 100)]


def dead_probe(queue: str = "delivery") -> DeadLetter:
    job = enqueue_probe(queue, fail="permanent")
    assert run_due(queue) == ["dead"]
    return DeadLetter.objects.get(job_id=str(job.id))


def run_lead_jobs() -> list[str]:
    """The lead-processing task body (which goes through run_job) for each due job."""
    return [process_lead.run(d.job_id, d.token) for d in ledger.take_due_jobs("lead-processing", 100)]


@pytest.fixture
def api(redis_client) -> Client:
    """A client with an API token that may read and change dead letters (the probes and the dispatcher nudge use the test Redis)."""
    _, secret = create_token("ops", scopes=["read", "dlq"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def patch(api, body, raw=None):
    return api.patch(URL, data=raw if raw is not None else json.dumps(body), content_type="application/json")


def post_requeue(api, body, raw=None, content_type="application/json"):
    return api.post(REQUEUE_URL, data=raw if raw is not None else json.dumps(body), content_type=content_type)


def assert_json_error(response, status, *words):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    for word in words:
        assert word in body["error"], body["error"]


# --- GET -----------------------------------------------------------------------------------------

def test_get_lists_unresolved_entries_newest_first_in_the_contract_shape(api):
    older = dead_probe("delivery")
    DeadLetter.objects.filter(pk=older.pk).update(failed_at=timezone.now() - timedelta(hours=1))
    newer = dead_probe("email-sending")
    resolved = dead_probe("delivery")
    DeadLetter.objects.filter(pk=resolved.pk).update(resolved=True)

    response = api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert [job["id"] for job in body["jobs"]] == [str(newer.id), str(older.id)]
    assert body["count"] == 2 and body["total"] == 2
    job = body["jobs"][0]
    assert set(job) == ENTRY_FIELDS
    assert job["queue_name"] == "email-sending" and job["job_id"] == newer.job_id
    assert job["job_data"] == {"sleep": 0.0, "fail": "permanent"}
    assert job["error_message"] == "PermanentError: probe asked to fail permanently"
    assert "Traceback" in job["error_stack"] and job["attempts_made"] == 1
    assert ISO_UTC.match(job["failed_at"]) and job["resolved"] is False
    assert job["resolved_at"] is None and job["resolved_by"] is None and job["notes"] is None


def test_stats_count_every_configured_queue_and_any_other_queue_present(api, settings):
    dead_probe("delivery")
    done = dead_probe("delivery")
    DeadLetter.objects.filter(pk=done.pk).update(resolved=True)
    DeadLetter.objects.create(queue_name="retired-queue", job_id="old", job_data={}, error_message="x")

    stats = api.get(URL).json()["stats"]

    assert stats["delivery"] == {"total": 2, "resolved": 1, "unresolved": 1}
    assert stats["retired-queue"] == {"total": 1, "resolved": 0, "unresolved": 1}
    for queue in settings.QUEUE_NAMES:
        if queue != "delivery":
            assert stats[queue] == {"total": 0, "resolved": 0, "unresolved": 0}


def test_get_filters_by_queue_and_limits(api):
    for _ in range(3):
        dead_probe("delivery")
    dead_probe("site-generation")

    body = api.get(URL, {"queue": "delivery", "limit": "2"}).json()
    assert body["count"] == 2 and body["total"] == 3
    assert {job["queue_name"] for job in body["jobs"]} == {"delivery"}
    assert body["stats"]["site-generation"]["unresolved"] == 1  # stats are never filtered
    # A queue no longer configured is still reachable while it holds entries.
    DeadLetter.objects.create(queue_name="retired-queue", job_id="old", job_data={}, error_message="x")
    assert api.get(URL, {"queue": "retired-queue"}).json()["total"] == 1


@pytest.mark.parametrize("params, words", [
    ({"queue": "no-such-queue"}, ["unknown queue", "lead-processing"]),
    ({"queue": "bad\x00queue"}, ["NUL"]),
    ({"limit": "0"}, ["limit"]),
    ({"limit": "1001"}, ["limit"]),
    ({"limit": "ten"}, ["limit"]),
    ({"limit": "-5"}, ["limit"]),
    # What int() would take but the document's integer is not
    ({"limit": ""}, ["whole number"]),
    ({"limit": " 5"}, ["whole number"]),
    ({"limit": "1_0"}, ["whole number"]),
    ({"limit": "\u0665"}, ["whole number"]),  # ARABIC-INDIC DIGIT FIVE
])
def test_get_refuses_bad_parameters(api, params, words):
    assert_json_error(api.get(URL, params), 400, *words)


def test_other_methods_are_a_json_405(api):
    response = api.post(URL, data="{}", content_type="application/json")
    assert_json_error(response, 405, "POST")
    assert "PATCH" in response["Allow"]
    assert_json_error(api.get(REQUEUE_URL), 405, "POST")


# --- PATCH ---------------------------------------------------------------------------------------

def test_patch_resolves_with_who_and_notes_then_reopens(api):
    entry = dead_probe()

    # The contract's resolvedBy is accepted when it names the caller (here the token's identity).
    response = patch(api, {"id": str(entry.id), "resolved": True, "resolvedBy": "token:ops",
                           "notes": "Fixed API key and reprocessed manually"})

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and set(body["job"]) == ENTRY_FIELDS
    assert body["job"]["resolved"] is True and body["job"]["resolved_by"] == "token:ops"
    assert body["job"]["notes"] == "Fixed API key and reprocessed manually"
    assert ISO_UTC.match(body["job"]["resolved_at"])
    entry.refresh_from_db()
    assert entry.resolved and entry.resolved_by == "token:ops"
    assert abs(entry.resolved_at - timezone.now()) < timedelta(seconds=30)
    assert api.get(URL).json()["count"] == 0  # resolved entries leave the list

    response = patch(api, {"id": str(entry.id), "resolved": False})
    assert response.status_code == 200
    job = response.json()["job"]
    assert job["resolved"] is False and job["resolved_at"] is None and job["resolved_by"] is None
    assert job["notes"] == "Fixed API key and reprocessed manually"  # kept for the post-mortem
    assert api.get(URL).json()["count"] == 1


def test_patch_without_resolved_by_records_the_caller(api):
    entry = dead_probe()
    response = patch(api, {"id": str(entry.id), "resolved": True})
    assert response.json()["job"]["resolved_by"] == "token:ops" and response.json()["job"]["notes"] is None


def test_resolving_again_keeps_the_first_resolver_and_time(api):
    entry = dead_probe()
    other = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('bob', scopes=['dlq'])[1]}")
    first = patch(api, {"id": str(entry.id), "resolved": True}).json()["job"]
    second = patch(other, {"id": str(entry.id), "resolved": True, "notes": "more"}).json()["job"]
    assert second["resolved_by"] == "token:ops" and second["resolved_at"] == first["resolved_at"]
    assert second["notes"] == "more"


@pytest.mark.parametrize("body, words", [
    ({"resolved": True}, ["id is required"]),
    ({"id": "", "resolved": True}, ["id is required"]),
    ({"id": "not-a-uuid", "resolved": True}, ["not a valid UUID"]),
    ({"id": 42, "resolved": True}, ["UUID string"]),
    ({"id": "{id}"}, ["resolved is required"]),
    ({"id": "{id}", "resolved": "yes"}, ["resolved must be true or false"]),
    ({"id": "{id}", "resolved": 1}, ["resolved must be true or false"]),
    ({"id": "{id}", "resolved": None}, ["resolved must be true or false"]),
    ({"id": "{id}", "resolved": True, "resolvedBy": 7}, ["resolvedBy must be a string"]),
    ({"id": "{id}", "resolved": True, "resolvedBy": "x" * 101}, ["resolvedBy is longer than 100"]),
    ({"id": "{id}", "resolved": True, "notes": ["a"]}, ["notes must be a string"]),
    ({"id": "{id}", "resolved": True, "notes": "nul\x00byte"}, ["NUL"]),
])
def test_patch_refuses_a_bad_body_with_400(api, body, words):
    entry = dead_probe()
    body = {key: str(entry.id) if value == "{id}" else value for key, value in body.items()}
    assert_json_error(patch(api, body), 400, *words)
    entry.refresh_from_db()
    assert entry.resolved is False and entry.notes is None


@pytest.mark.parametrize("raw, content_type, status", [
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 400),
    ("\"text\"", "application/json", 400),
    (" ", "application/json", 400),
    ("id=1", "application/x-www-form-urlencoded", 415),
])
def test_patch_refuses_a_body_that_is_not_a_json_object(api, raw, content_type, status):
    response = api.patch(URL, data=raw, content_type=content_type)
    assert_json_error(response, status)


def test_a_body_over_the_upload_limit_is_a_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    entry = dead_probe()
    big = {"id": str(entry.id), "resolved": True, "notes": "x" * 2000}
    assert_json_error(patch(api, big), 413, "1000 bytes")
    assert_json_error(post_requeue(api, big), 413, "1000 bytes")


def test_patch_of_an_unknown_entry_is_404(api):
    missing = uuid.uuid4()
    assert_json_error(patch(api, {"id": str(missing), "resolved": True}), 404, str(missing))


# --- DELETE --------------------------------------------------------------------------------------

def test_delete_removes_the_entry(api):
    entry = dead_probe()
    response = api.delete(f"{URL}?id={entry.id}")
    assert response.status_code == 200
    assert response.json() == {"success": True, "deleted": str(entry.id)}
    assert not DeadLetter.objects.filter(pk=entry.pk).exists()
    assert Job.objects.get(pk=entry.job_id).state == "dead"  # the ledger's record is not the entry's to delete


@pytest.mark.parametrize("query, status, words", [
    ("", 400, ["id query parameter is required"]),
    ("?id=", 400, ["id query parameter is required"]),
    ("?id=nope", 400, ["not a valid UUID"]),
    (f"?id={uuid.UUID(int=1)}", 404, ["no dead-letter entry"]),
])
def test_delete_refuses_a_missing_bad_or_unknown_id(api, query, status, words):
    dead_probe()
    assert_json_error(api.delete(f"{URL}{query}"), status, *words)
    assert DeadLetter.objects.count() == 1


# --- requeue -------------------------------------------------------------------------------------

def test_requeue_puts_the_job_back_and_resolves_the_entry_with_a_note(api):
    entry = dead_probe()

    response = post_requeue(api, {"id": str(entry.id), "notes": "upstream fixed"})

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["jobId"] == entry.job_id and body["state"] == "pending"
    assert set(body["job"]) == ENTRY_FIELDS and body["job"]["id"] == str(entry.id)
    assert body["job"]["resolved"] is True and body["job"]["resolved_by"] == "token:ops"
    assert re.fullmatch(r"Requeued by token:ops at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\nupstream fixed",
                        body["job"]["notes"])
    job = Job.objects.get(pk=entry.job_id)
    assert job.state == "pending" and job.attempts == 0 and job.max_attempts == 3
    entry.refresh_from_db()
    assert entry.resolved and entry.notes == body["job"]["notes"]


def test_a_requeued_entry_runs_again(redis_client):
    # Given a job that failed permanently while the resource it needs was missing
    fixed = False

    def needs_the_fix(job):
        if not fixed:
            raise PermanentError("the customer's account does not exist yet")

    ledger.enqueue("delivery", "test.needs_fix", {"account": 7})
    assert run_due("delivery", needs_the_fix) == ["dead"]
    entry = DeadLetter.objects.get()
    _, secret = create_token("ops", scopes=["read", "dlq"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    # When the cause is fixed and the entry requeued
    fixed = True
    assert post_requeue(api, {"id": str(entry.id)}).status_code == 200

    # Then the dispatcher takes it again and it succeeds on its first fresh attempt
    assert run_due("delivery", needs_the_fix) == ["succeeded"]
    job = Job.objects.get(pk=entry.job_id)
    assert job.state == "succeeded" and job.attempts == 1
    assert DeadLetter.objects.count() == 1  # no new entry


def test_a_requeued_job_that_fails_again_is_dead_lettered_again(api):
    entry = dead_probe()
    assert post_requeue(api, {"id": str(entry.id)}).status_code == 200
    assert run_due("delivery") == ["dead"]
    again = DeadLetter.objects.exclude(pk=entry.pk).get()
    assert again.job_id == entry.job_id and again.resolved is False
    assert [job["id"] for job in api.get(URL).json()["jobs"]] == [str(again.id)]


def test_a_requeued_lead_job_reopens_its_submission_and_stores_the_lead(api):
    # Given a lead dead-lettered for its malformed email, its submission marked failed
    [submission] = accept_leads([{"email": "jane@", "first_name": "Jane", "company": "Acme"}], source="test")
    assert run_lead_jobs() == ["dead"]
    submission.refresh_from_db()
    assert submission.status == "failed"
    entry = DeadLetter.objects.get(job_id=str(submission.job_id))

    # When someone corrects the raw lead and requeues the entry
    LeadSubmission.objects.filter(pk=submission.pk).update(payload={**submission.payload, "email": "jane@acme.io"})
    response = post_requeue(api, {"id": str(entry.id), "notes": "email corrected by hand"})
    assert response.status_code == 200
    submission.refresh_from_db()
    assert submission.status == "received" and submission.error == "" and submission.processed_at is None

    # Then the lead-processing job runs again and stores the lead
    assert run_lead_jobs() == ["succeeded"]
    submission.refresh_from_db()
    assert submission.status in ("qualified", "disqualified") and submission.lead.email == "jane@acme.io"
    assert Lead.objects.count() == 1


def test_requeue_of_a_resolved_entry_is_409_and_changes_nothing(api):
    entry = dead_probe()
    patch(api, {"id": str(entry.id), "resolved": True})
    response = post_requeue(api, {"id": str(entry.id)})
    assert_json_error(response, 409, "already resolved", "token:ops")
    assert Job.objects.get(pk=entry.job_id).state == "dead"


def test_requeuing_twice_is_409_the_second_time(api):
    entry = dead_probe()
    assert post_requeue(api, {"id": str(entry.id)}).status_code == 200
    assert_json_error(post_requeue(api, {"id": str(entry.id)}), 409, "already resolved")
    assert Job.objects.get(pk=entry.job_id).attempts == 0


def test_two_people_requeuing_the_same_entry_at_once_requeue_it_once(redis_client):
    entry = dead_probe()
    barrier, outcomes = threading.Barrier(2), []

    def person(name):
        try:
            barrier.wait()
            actions.requeue(entry.id, by=name)
            outcomes.append("requeued")
        except actions.Conflict as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=person, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("requeued") == 1
    assert len(outcomes) == 2 and any("already resolved" in outcome for outcome in outcomes)
    assert Job.objects.get(pk=entry.job_id).state == "pending"


def test_requeue_when_the_ledger_job_is_not_dead_is_409_and_leaves_the_entry_open(api):
    entry = dead_probe()
    Job.objects.filter(pk=entry.job_id).update(state="succeeded")
    assert_json_error(post_requeue(api, {"id": str(entry.id)}), 409, "is succeeded, not dead")
    entry.refresh_from_db()
    assert entry.resolved is False and entry.notes is None


@pytest.mark.parametrize("job_id", ["pruned", None])
def test_requeue_when_the_ledger_job_is_gone_is_409(api, job_id):
    entry = dead_probe()
    Job.objects.filter(pk=entry.job_id).delete()
    if job_id is None:
        assert_json_error(post_requeue(api, {"id": str(entry.id)}), 409, "no longer exists")
    else:
        DeadLetter.objects.filter(pk=entry.pk).update(job_id="not-a-ledger-id")
        assert_json_error(post_requeue(api, {"id": str(entry.id)}), 409, "no ledger job id")
    entry.refresh_from_db()
    assert entry.resolved is False


@pytest.mark.parametrize("body, raw, status, words", [
    ({}, None, 400, ["id is required"]),
    ({"id": "123"}, None, 400, ["not a valid UUID"]),
    ({"id": str(uuid.UUID(int=2))}, None, 404, ["no dead-letter entry"]),
    ({"id": "{id}", "notes": 5}, None, 400, ["notes must be a string"]),
    (None, "{oops", 400, ["not valid JSON"]),
    (None, "null", 400, ["JSON object"]),
])
def test_requeue_refuses_a_bad_body(api, body, raw, status, words):
    entry = dead_probe()
    if body is not None:
        body = {key: str(entry.id) if value == "{id}" else value for key, value in body.items()}
    assert_json_error(post_requeue(api, body, raw=raw), status, *words)
    assert Job.objects.get(pk=entry.job_id).state == "dead"


def test_the_dashboard_requeues_with_its_session_and_csrf_header(redis_client):
    # The worker dashboard runs in the admin's browser session: no token, the CSRF header instead.
    entry = dead_probe()
    browser = Client(enforce_csrf_checks=True)
    alice = User.objects.create_user("alice", password="x", is_staff=True)
    alice.user_permissions.add(Permission.objects.get(codename="change_deadletter"))
    browser.force_login(alice)
    assert_json_error(post_requeue(browser, {"id": str(entry.id)}), 403, "CSRF")
    browser.get("/admin/")
    response = browser.post(REQUEUE_URL, data=json.dumps({"id": str(entry.id)}), content_type="application/json",
                            HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    assert response.status_code == 200
    assert response.json()["job"]["resolved_by"] == "alice"
    assert response.json()["job"]["notes"].startswith("Requeued by alice at ")


# --- who did it: the resolver is the caller, and every change is in the admin's history ----------

def history(entry: DeadLetter) -> list[tuple[str, int, str]]:
    """The admin's history of an entry, oldest first: (user, action flag, message)."""
    return [(log.user.get_username(), log.action_flag, log.get_change_message())
            for log in LogEntry.objects.filter(object_id=str(entry.pk)).order_by("action_time", "id")]


def test_a_token_resolves_for_the_person_resolved_by_names_as_the_original_contract_does(api):
    """The original system's own request: a token acts for a service, the person is named in the body."""
    entry = dead_probe()
    response = patch(api, {"id": str(entry.id), "resolved": True, "resolvedBy": "admin@example.com",
                           "notes": "Fixed API key and reprocessed manually"})
    assert response.status_code == 200, response.content
    assert response.json()["job"]["resolved_by"] == "admin@example.com"
    entry.refresh_from_db()
    assert entry.resolved and entry.resolved_by == "admin@example.com"
    # The token that sent it is in the history, beside the name it gave.
    assert history(entry) == [("token:ops", CHANGE, "Resolved: Fixed API key and reprocessed manually "
                                                    "(resolvedBy 'admin@example.com') (through the API)")]


@pytest.mark.parametrize("resolved_by", ["", "   ", "line\nbreak", "esc\x1b[31m"])
def test_a_token_s_resolved_by_must_be_a_printable_name(api, resolved_by):
    entry = dead_probe()
    assert_json_error(patch(api, {"id": str(entry.id), "resolved": True, "resolvedBy": resolved_by}), 400,
                      "resolvedBy must name the person")
    entry.refresh_from_db()
    assert entry.resolved is False and not LogEntry.objects.exists()


def test_a_secret_given_as_resolved_by_is_stored_redacted(api, settings):
    entry = dead_probe()
    secret = settings.SECRET_KEY
    assert patch(api, {"id": str(entry.id), "resolved": True, "resolvedBy": secret[:100]}).status_code == 200
    entry.refresh_from_db()
    assert secret[:100] not in entry.resolved_by and secret[:100] not in history(entry)[0][2]


def alice_with_dlq_change() -> Client:
    """A browser session of alice, staff who may view and change dead letters."""
    alice = User.objects.create_user("alice", password="x", is_staff=True)
    alice.user_permissions.add(*Permission.objects.filter(codename__in=["view_deadletter", "change_deadletter"]))
    client = Client()
    client.force_login(alice)
    return client


def test_a_logged_in_person_is_the_resolver_and_cannot_name_someone_else(redis_client):
    entry = dead_probe()
    client = alice_with_dlq_change()
    assert_json_error(patch(client, {"id": str(entry.id), "resolved": True, "resolvedBy": "the-ceo"}), 400,
                      "resolvedBy", "alice", "the-ceo")
    entry.refresh_from_db()
    assert entry.resolved is False and entry.resolved_by is None and not LogEntry.objects.exists()
    assert patch(client, {"id": str(entry.id), "resolved": True, "resolvedBy": "alice"}).json()["job"]["resolved_by"] == "alice"


def test_every_api_change_is_in_the_admin_history_under_the_token_that_made_it(api):
    entry = dead_probe()

    assert patch(api, {"id": str(entry.id), "resolved": True, "notes": "looked at it"}).status_code == 200
    assert patch(api, {"id": str(entry.id), "resolved": True}).status_code == 200  # no change: no record
    assert patch(api, {"id": str(entry.id), "resolved": False}).status_code == 200
    assert post_requeue(api, {"id": str(entry.id)}).status_code == 200
    assert api.delete(f"{URL}?id={entry.id}").status_code == 200

    assert history(entry) == [
        ("token:ops", CHANGE, "Resolved: looked at it (through the API)"),
        ("token:ops", CHANGE, "Re-opened (through the API)"),
        ("token:ops", CHANGE, f"Requeued ledger job {entry.job_id} (through the API)"),
        ("token:ops", DELETION, "Deleted (through the API)"),
    ]
    log = LogEntry.objects.get(action_flag=DELETION)
    assert log.content_type.model_class() is DeadLetter and log.object_repr == str(entry)
    # The token's identity is a user that cannot log in, and it outlives the token.
    user = log.user
    assert user.is_active is False and not user.has_usable_password() and not user.is_staff
    ApiToken.objects.filter(name="ops").delete()
    assert history(entry)[0][0] == "token:ops"


def test_a_session_change_is_in_the_history_under_the_person_and_shown_on_the_history_page(redis_client):
    entry = dead_probe()
    client = alice_with_dlq_change()

    response = patch(client, {"id": str(entry.id), "resolved": True, "notes": "known outage"})

    assert response.json()["job"]["resolved_by"] == "alice"
    assert history(entry) == [("alice", CHANGE, "Resolved: known outage (through the API)")]
    page = client.get(f"/admin/dlq/deadletter/{entry.pk}/history/").content.decode()
    assert "Resolved: known outage (through the API)" in page and "alice" in page


def test_a_failed_change_leaves_no_history(api):
    entry = dead_probe()
    Job.objects.filter(pk=entry.job_id).update(state="succeeded")
    assert post_requeue(api, {"id": str(entry.id)}).status_code == 409
    assert api.delete(f"{URL}?id={uuid.uuid4()}").status_code == 404
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("text, secret", SAMPLES[:3] + SAMPLES[-2:], ids=SAMPLE_IDS[:3] + SAMPLE_IDS[-2:])
def test_a_secret_in_the_notes_is_stored_and_recorded_redacted(api, text, secret):
    entry, other = dead_probe(), dead_probe()
    assert patch(api, {"id": str(entry.id), "resolved": True, "notes": f"the old key {text} was wrong"}).status_code == 200
    assert post_requeue(api, {"id": str(other.id), "notes": f"rotated {text}"}).status_code == 200
    for row in (entry, other):
        row.refresh_from_db()
        assert secret not in row.notes and "redacted" in row.notes.lower()
    assert not [m for _, _, m in history(entry) + history(other) if secret in m]
