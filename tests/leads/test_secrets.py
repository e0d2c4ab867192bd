"""Secrets a source puts inside a lead are redacted when the lead is accepted: no submission, job,
dead-letter entry, admin page or log line ever holds them. The job carries ids, not the lead."""
import json
import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client

from dlq.models import DeadLetter
from leads.models import LeadSubmission
from leads.tasks import process_lead
from workers import ledger
from workers.models import Job, JobFailure

SECRETS = ["hunter2-pw", "ak-123456789", "tok-98765432", "sec-55555555", "cred-7777777", "urlpw-4242"]
LEAD = {
    "email": "jane@",  # invalid: the lead is dead-lettered, so every place a lead can reach is filled
    "first_name": "Jane",
    "password": "hunter2-pw",
    "api_key": "ak-123456789",
    "token": "tok-98765432",
    "client_secret": "sec-55555555",
    "credentials": "cred-7777777",
    "website": "https://jane:urlpw-4242@acme.io/about",
}


def assert_no_secret(text: str, where: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} in {where}"


@pytest.mark.django_db(transaction=True)
def test_secrets_in_a_lead_never_reach_storage_admin_or_logs(caplog, redis_client):
    caplog.set_level(logging.DEBUG)
    response = Client().post("/api/webhooks/clay", data=json.dumps([LEAD]), content_type="application/json",
                             HTTP_X_CLAY_SECRET="test-clay-secret")
    assert response.status_code == 202
    assert [process_lead.run(d.job_id, d.token) for d in ledger.take_due_jobs("lead-processing", 10)] == ["dead"]

    submission = LeadSubmission.objects.get()
    job = Job.objects.get()
    entry = DeadLetter.objects.get()
    assert submission.payload["password"] == "[redacted]" and submission.payload["email"] == "jane@"
    assert submission.payload["website"] == "https://jane:[redacted]@acme.io/about"
    assert job.payload == {"submission_id": submission.pk}  # ids, not a second copy of the lead
    assert entry.job_data == {"submission_id": submission.pk, "lead": submission.payload}  # for the person
    stored = [json.dumps(submission.payload), submission.error, json.dumps(job.payload), job.last_error,
              json.dumps(entry.job_data), entry.error_message, entry.error_stack,
              *JobFailure.objects.values_list("error", flat=True)]
    assert_no_secret("\n".join(stored), "the database")

    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="pw-123456789"))
    for url in (f"/admin/leads/leadsubmission/{submission.pk}/change/", f"/admin/workers/job/{job.pk}/change/",
                f"/admin/dlq/deadletter/{entry.pk}/change/", "/admin/dlq/deadletter/", "/admin/workers/",
                "/admin/workers/data", "/api/admin/dead-letter-queue"):
        page = admin.get(url)
        assert page.status_code == 200, url
        assert_no_secret(page.content.decode(), url)
    assert_no_secret(caplog.text, "the log")
