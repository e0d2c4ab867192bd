"""POST /api/webhooks/clay: authentication, validation and what it stores."""
import json

import pytest
from django.test import override_settings

from leads.models import LeadSubmission
from workers.models import Job

URL = "/api/webhooks/clay"
SECRET = "test-clay-secret"


def post(client, body, *, secret=SECRET, content_type="application/json", raw=None):
    headers = {"HTTP_X_CLAY_SECRET": secret} if secret is not None else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


@pytest.mark.django_db
def test_accepts_a_list_and_stores_submission_and_job_together(client):
    response = post(client, [{"email": "a@acme.io"}, {"email": "b@acme.io", "firstName": "B"}])

    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True and body["accepted"] == 2
    jobs = {str(j.id): j for j in Job.objects.all()}
    assert set(body["jobIds"]) == set(jobs)
    for submission in LeadSubmission.objects.all():
        job = jobs[str(submission.job_id)]
        assert job.queue == "lead-processing" and job.task == "leads.process_lead"
        assert job.state == Job.State.PENDING and job.attempts == 0 and job.max_attempts == 3
        assert job.payload == {"submission_id": submission.pk}  # ids only: the submission is the lead's one copy
        assert job.idempotency_key == f"lead-submission:{submission.pk}"


@pytest.mark.django_db
def test_accepts_a_single_object(client):
    response = post(client, {"email": "solo@acme.io"})
    assert response.status_code == 202 and response.json()["accepted"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", "ünïcode"])
def test_wrong_or_missing_secret_is_401_and_stores_nothing(client, secret):
    response = post(client, {"email": "a@acme.io"}, secret=secret)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "missing or wrong X-Clay-Secret header"}
    assert not LeadSubmission.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_unconfigured_secret_disables_the_webhook(client):
    with override_settings(CLAY_WEBHOOK_SECRET=""):
        response = post(client, {"email": "a@acme.io"}, secret="")
    assert response.status_code == 503
    assert "CLAY_WEBHOOK_SECRET" in response.json()["error"]


@pytest.mark.django_db
def test_field_errors_are_400_and_nothing_is_stored(client):
    response = post(client, [{"email": "ok@acme.io"}, {"email": None}, {"email": "x@acme.io", "phone": 5}])
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["errors"] == [
        {"index": 1, "field": "email", "message": "is required"},
        {"index": 2, "field": "phone", "message": "must be a string, got a number"},
    ]
    assert not LeadSubmission.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw, status, fragment",
    [
        ("{not json", 400, "not valid JSON"),
        ("[]", 400, "empty"),
        ("\xff\xfe", 400, "not valid JSON"),
        ('"just a string"', 400, "must be a JSON object"),
    ],
)
def test_malformed_bodies_get_a_json_error(client, raw, status, fragment):
    response = post(client, None, raw=raw)
    assert response.status_code == status
    assert fragment in json.dumps(response.json())


@pytest.mark.django_db
def test_wrong_content_type_is_415(client):
    response = post(client, None, raw="email=a@acme.io", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


@pytest.mark.django_db
def test_too_large_body_is_413(client):
    with override_settings(WEBHOOK_MAX_BYTES=2048, DATA_UPLOAD_MAX_MEMORY_SIZE=2048):
        response = post(client, [{"email": f"user{i}@acme.io", "notes": "x" * 100} for i in range(50)])
    assert response.status_code == 413
    assert not LeadSubmission.objects.exists()


@pytest.mark.django_db
def test_too_many_leads_is_413(client):
    with override_settings(WEBHOOK_MAX_LEADS=3):
        response = post(client, [{"email": f"u{i}@acme.io"} for i in range(4)])
    assert response.status_code == 413


@pytest.mark.django_db
def test_get_is_405_json(client):
    response = client.get(URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["success"] is False


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "no API endpoint at /api/nothing-here"}


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_is_503_with_retry_after_and_the_same_key_stores_once_later(client):
    """PostgreSQL away (make chaos stops it for 20 s): a 503 the sender retries, not a 500; the retry
    with the same Idempotency-Key once it is back stores the batch once."""
    from django.db import connection

    from tests.system.processes import free_port

    body, headers = [{"email": "a@acme.io"}], {"HTTP_X_CLAY_SECRET": SECRET, "HTTP_IDEMPOTENCY_KEY": "batch-1"}
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there: connection refused
    try:
        with override_settings(CLAY_WEBHOOK_SECRET=SECRET):
            response = client.post(URL, data=json.dumps(body), content_type="application/json", **headers)
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"success": False,
                               "error": "the database is unavailable; nothing was stored, try again in 5 s"}
    with override_settings(CLAY_WEBHOOK_SECRET=SECRET):
        first = client.post(URL, data=json.dumps(body), content_type="application/json", **headers)
        again = client.post(URL, data=json.dumps(body), content_type="application/json", **headers)
    assert first.status_code == again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert LeadSubmission.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_is_one_warning_line_not_an_error_with_a_traceback(client, caplog):
    from django.db import connection

    from tests.system.processes import free_port

    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        with caplog.at_level("INFO"):
            response = post(client, [{"email": "a@acme.io"}])
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503
    assert [(r.levelname, r.exc_info is None) for r in caplog.records] == [("WARNING", True)]
    assert "the database is unavailable" in caplog.records[0].getMessage()
