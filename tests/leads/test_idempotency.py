"""Idempotency-Key on the webhook: a retried request gets the first answer and stores nothing new."""
import hashlib
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from leads import views
from leads.idempotency import key_digest
from leads.models import LeadSubmission, WebhookIdempotencyKey
from workers.models import Job

URL = "/api/webhooks/clay"
SECRET = "test-clay-secret"
BATCH = [{"email": "a@acme.io"}, {"email": "b@acme.io"}]


def post(client, body, key=None):
    headers = {"HTTP_X_CLAY_SECRET": SECRET}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


@pytest.mark.django_db
def test_the_same_key_returns_the_first_answer_and_stores_nothing_new(client):
    first = post(client, BATCH, key="batch-42")
    again = post(client, BATCH, key="batch-42")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert LeadSubmission.objects.count() == 2 and Job.objects.count() == 2


@pytest.mark.django_db
def test_a_key_is_stored_as_its_sha256_and_a_retry_finds_it_by_its_hash(client):
    # A sender may put anything in the header, a token included: the table never holds it by value.
    key = "rsl_live_secret_batch_key_42"
    post(client, BATCH, key=key)

    stored = WebhookIdempotencyKey.objects.get()
    assert stored.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM leads_webhookidempotencykey")
        assert key not in repr(cursor.fetchall())
    assert key not in str(stored)
    again = post(client, BATCH, key=key)
    assert again["Idempotent-Replayed"] == "true" and LeadSubmission.objects.count() == 2


@pytest.mark.django_db
def test_without_a_key_a_retry_stores_again(client):
    post(client, BATCH)
    post(client, BATCH)
    assert LeadSubmission.objects.count() == 4


@pytest.mark.django_db
def test_a_different_body_under_the_same_key_is_422(client):
    post(client, BATCH, key="batch-42")
    response = post(client, [{"email": "c@acme.io"}], key="batch-42")

    assert response.status_code == 422
    assert "already used" in response.json()["error"] and "different body" in response.json()["error"]
    assert LeadSubmission.objects.count() == 2


@pytest.mark.django_db
def test_a_refused_request_does_not_use_up_its_key(client):
    assert post(client, [{"email": None}], key="k1").status_code == 400
    assert not WebhookIdempotencyKey.objects.exists()
    assert post(client, BATCH, key="k1").status_code == 202


@pytest.mark.django_db
def test_a_key_older_than_24_hours_is_forgotten(client):
    post(client, BATCH, key="old")
    post(client, BATCH, key="other")
    WebhookIdempotencyKey.objects.filter(key_sha256=key_digest("old")).update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    WebhookIdempotencyKey.objects.filter(key_sha256=key_digest("other")).update(created_at=timezone.now() - timedelta(hours=25))

    response = post(client, BATCH, key="old")

    assert response.status_code == 202 and not response.has_header("Idempotent-Replayed")
    assert LeadSubmission.objects.count() == 6
    assert list(WebhookIdempotencyKey.objects.values_list("key_sha256", flat=True)) == [key_digest("old")]  # expired ones pruned


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "caf\u00e9", "a\x00b", "\ud800", "tab\there", "line\n"])
def test_an_unusable_key_is_400(client, key):
    response = post(client, BATCH, key=key)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]
    assert not LeadSubmission.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_the_same_key_store_once(monkeypatch):
    real_accept = views.accept_leads

    def slow_accept(items, *, source):
        submissions = real_accept(items, source=source)
        time.sleep(0.5)  # hold the transaction open while the other request arrives
        return submissions

    monkeypatch.setattr(views, "accept_leads", slow_accept)
    answers = []

    def send():
        try:
            response = post(Client(), BATCH, key="race")
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(answers) == 3
    assert {status for status, _ in answers} == {202}
    assert all(body == answers[0][1] for _, body in answers)
    assert LeadSubmission.objects.count() == 2 and Job.objects.count() == 2
