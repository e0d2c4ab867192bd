"""The admin API with what PostgreSQL refuses (a 400 naming the field, nothing changed), and HEAD on
its GET endpoints."""
import json

import pytest
from django.test import Client

from access.auth import create_token
from dlq.models import DeadLetter
from tests.dlq.test_api import dead_probe

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/admin/dead-letter-queue"
REQUEUE_URL = "/api/admin/dead-letter-queue/requeue"


@pytest.fixture
def api(redis_client) -> Client:
    _, secret = create_token("ops", scopes=["read", "dlq"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def send(api, method, url, raw):
    return getattr(api, method)(url, data=raw, content_type="application/json")


@pytest.mark.parametrize(
    "template, fragment",
    [
        ('{"id": "%s", "resolved": true, "resolvedBy": "\\ud800"}', "resolvedBy: the value contains a lone surrogate"),
        ('{"id": "%s", "resolved": true, "notes": "a\\udc00b"}', "notes: the value contains a lone surrogate"),
        ('{"id": "%s", "resolved": true, "notes": "a\\u0000b"}', "notes: the value contains a NUL"),
        ('{"id": "%s", "resolved": true, "extra": NaN}', "extra: must be a finite number, got NaN"),
        ('{"id": "%s", "resolved": true, "\\u0000": 1}', "the key contains a NUL"),
        ('{"id": "%s", "resolved": true, "x": ' + "[" * 1000 + "]" * 1000 + "}", "nested too deeply"),
        ('{"id": "%s", "resolved": true, "notes": "\xed\xa0\x80"}', "not UTF-8"),
    ],
)
def test_patch_with_unstorable_values_is_400_and_changes_nothing(api, template, fragment):
    entry = dead_probe()
    raw = (template % entry.pk).encode("latin-1")  # byte for byte: the escapes stay escapes

    response = send(api, "patch", URL, raw)

    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]
    entry.refresh_from_db()
    assert entry.resolved is False and entry.notes is None


@pytest.mark.parametrize(
    "template, fragment",
    [
        ('{"id": "%s", "notes": "\\ud800"}', "notes: the value contains a lone surrogate"),
        ('{"id": "%s", "notes": ' + "{\"a\": " * 500 + "1" + "}" * 500 + "}", "nested too deeply"),
        ('{"id": "%s", "notes": "ok", "n": -Infinity}', "n: must be a finite number"),
    ],
)
def test_requeue_with_unstorable_values_is_400_and_requeues_nothing(api, template, fragment):
    entry = dead_probe()
    response = send(api, "post", REQUEUE_URL, template % entry.pk)
    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]
    assert DeadLetter.objects.get(pk=entry.pk).resolved is False


@pytest.mark.parametrize("url", [URL, URL + "?limit=5", "/api/admin/workers/health", "/metrics"])
def test_head_on_get_endpoints_answers_like_get_without_a_body(api, url):
    dead_probe()
    got = api.get(url)
    head = api.head(url)

    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"]
    assert int(head["Content-Length"]) > 0


def test_head_is_refused_where_get_is(api):
    response = Client().head(URL)  # no credentials
    assert response.status_code == 401
    assert api.head(URL + "?limit=0").status_code == 400


def test_head_on_post_only_endpoints_is_405(api):
    response = api.head(REQUEUE_URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
    response = Client().head("/api/webhooks/clay")
    assert response.status_code == 405


def test_valid_patch_still_works(api):
    entry = dead_probe()
    response = send(api, "patch", URL, json.dumps({"id": str(entry.pk), "resolved": True, "notes": "caf\u00e9 \U0001F600"}))
    assert response.status_code == 200
    entry.refresh_from_db()
    assert entry.resolved and entry.notes == "caf\u00e9 \U0001F600"
