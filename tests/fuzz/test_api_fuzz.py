"""Fuzz the webhook and every admin API endpoint through Django's test client, with valid
credentials: generated bodies (NUL, lone surrogates, NaN and Infinity, numbers out of range, deep
nesting, broken UTF-8, truncated JSON), headers and query parameters, odd ids.

Whatever comes in: never a 500; every refusal a 4xx JSON whose `error` names the problem; nothing
stored or changed by a refused request.
"""
import json

import pytest
from django.utils import timezone
from hypothesis import given, strategies as st

from dlq.models import DeadLetter
from dlq.services import record_dead_letter
from leads.models import Lead, LeadSubmission, WebhookIdempotencyKey
from tests.fuzz.coverage import fuzzes
from tests.fuzz.strategies import (assert_answer_ok, content_types, existing, fuzz_settings, ids, leaves, query_params,
                                   raw_bodies, rolled_back, texts, values, webhook_documents, with_query)
from workers.models import Job

pytestmark = pytest.mark.django_db


def dead_entries(count: int = 2) -> list[DeadLetter]:
    """Dead-letter entries with dead ledger jobs, as failing jobs leave them (requeue can act on them)."""
    entries = []
    for n in range(count):
        job = Job.objects.create(queue="delivery", task="fuzz.task", payload={"n": n}, state=Job.State.DEAD,
                                 attempts=1, next_attempt_at=timezone.now(), finished_at=timezone.now())
        entries.append(record_dead_letter(queue_name="delivery", job_id=str(job.id), job_data=job.payload,
                                          error_message="boom", error_stack="", attempts_made=1))
    return entries


def dlq_snapshot() -> list:
    return [list(DeadLetter.objects.order_by("id").values()), list(Job.objects.order_by("id").values("id", "state"))]


def resolve_id(value, entries: list[DeadLetter]):
    if isinstance(value, str) and value.startswith("existing-"):
        return str(entries[int(value[-1])].pk)
    return value


def send_to_entries(client, method, url, document, mangle, content_type, data) -> None:
    """Send `document` (its "id" made a real entry's when it names one, the body maybe mangled) and
    check the answer; a refusal must leave every entry and job as it was."""
    entries = dead_entries()
    if isinstance(document, dict) and "id" in document:
        document["id"] = resolve_id(document["id"], entries)
    raw = data.draw(raw_bodies(st.just(document))) if mangle else json.dumps(document, allow_nan=True).encode()
    before = dlq_snapshot()

    response = client.generic(method, url, raw, content_type)

    assert_answer_ok(response, method)
    if response.status_code >= 400:
        assert dlq_snapshot() == before, f"a refused {method} {url} changed something"


# --- the webhook ---------------------------------------------------------------------------------

@fuzzes("POST /api/webhooks/clay")
@fuzz_settings
@given(raw=raw_bodies(webhook_documents), content_type=content_types, params=query_params,
       key=st.one_of(st.none(), st.none(), texts, st.sampled_from(["retry-1", "retry-2"])),
       secret=st.tuples(st.sampled_from([True] * 9 + [False]), texts).map(lambda t: "test-clay-secret" if t[0] else t[1]))
def test_webhook_fuzz(client, raw, content_type, params, key, secret):
    # Not rolled back: a later example may retry an earlier one's Idempotency-Key.
    headers = {"HTTP_X_CLAY_SECRET": secret}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    before = (LeadSubmission.objects.count(), Job.objects.count(), WebhookIdempotencyKey.objects.count(),
              Lead.objects.count())

    response = client.generic("POST", with_query("/api/webhooks/clay", params), raw, content_type, **headers)

    assert_answer_ok(response, "POST")
    after = (LeadSubmission.objects.count(), Job.objects.count(), WebhookIdempotencyKey.objects.count(),
             Lead.objects.count())
    if response.status_code == 202 and not response.has_header("Idempotent-Replayed"):
        accepted = response.json()["accepted"]
        assert after[:2] == (before[0] + accepted, before[1] + accepted)
    else:
        assert after == before, "a refused or replayed request stored something"
    if response.status_code == 400 and "errors" in response.json():
        for error in response.json()["errors"]:
            assert isinstance(error["index"], int) and isinstance(error["field"], str) and error["message"]


# --- the admin API -------------------------------------------------------------------------------

@fuzzes("GET /api/admin/dead-letter-queue")
@fuzz_settings
@given(method=st.sampled_from(["GET", "HEAD"]), params=query_params)
def test_dead_letter_list_fuzz(token_client, method, params):
    with rolled_back():
        entries = dead_entries(1)
        params = {k: resolve_id(v, entries * 2) for k, v in params.items()}
        response = token_client.generic(method, with_query("/api/admin/dead-letter-queue", params))
        assert_answer_ok(response, method)


@fuzzes("PATCH /api/admin/dead-letter-queue")
@fuzz_settings
@given(
    document=st.one_of(
        st.fixed_dictionaries({"id": existing, "resolved": st.booleans()},
                              optional={"resolvedBy": st.text(max_size=20), "notes": st.text(max_size=50)}),
        st.fixed_dictionaries({}, optional={"id": ids, "resolved": st.one_of(st.booleans(), st.booleans(), leaves),
                                            "resolvedBy": st.one_of(texts, leaves), "notes": st.one_of(texts, values)}),
        values,
    ),
    mangle=st.booleans(), content_type=content_types, params=query_params, data=st.data(),
)
def test_dead_letter_patch_fuzz(token_client, document, mangle, content_type, params, data):
    with rolled_back():
        send_to_entries(token_client, "PATCH", with_query("/api/admin/dead-letter-queue", params), document, mangle,
                        content_type, data)


@fuzzes("DELETE /api/admin/dead-letter-queue")
@fuzz_settings
@given(entry_id=ids, params=query_params, raw=st.one_of(st.just(b""), raw_bodies(values)))
def test_dead_letter_delete_fuzz(token_client, entry_id, params, raw):
    with rolled_back():
        entries = dead_entries()
        params = dict(params)
        if entry_id is not None:
            params["id"] = str(resolve_id(entry_id, entries))
        before = dlq_snapshot()

        response = token_client.generic("DELETE", with_query("/api/admin/dead-letter-queue", params), raw,
                                        "application/json")

        assert_answer_ok(response, "DELETE")
        if response.status_code >= 400:
            assert dlq_snapshot() == before, "a refused DELETE changed something"


@fuzzes("POST /api/admin/dead-letter-queue/requeue")
@fuzz_settings
@given(
    document=st.one_of(st.fixed_dictionaries({"id": existing}, optional={"notes": st.text(max_size=50)}),
                       st.fixed_dictionaries({}, optional={"id": ids, "notes": st.one_of(texts, values)}), values),
    mangle=st.booleans(), content_type=content_types, params=query_params, data=st.data(),
)
def test_requeue_fuzz(token_client, document, mangle, content_type, params, data):
    with rolled_back():
        send_to_entries(token_client, "POST", with_query("/api/admin/dead-letter-queue/requeue", params), document,
                        mangle, content_type, data)


@fuzzes("GET /api/admin/workers/charts")
@fuzz_settings
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]), params=query_params,
       raw=st.one_of(st.just(b""), raw_bodies(values)))
def test_workers_charts_fuzz(token_client, method, params, raw):
    with rolled_back():
        response = token_client.generic(method, with_query("/api/admin/workers/charts", params), raw, "application/json")
        assert_answer_ok(response, method)
        if method in ("GET", "HEAD"):
            assert response.status_code == 200


@fuzzes("POST /api/admin/dead-letter-queue/bulk")
@fuzz_settings
@given(
    document=st.one_of(
        st.fixed_dictionaries({"action": st.sampled_from(["requeue", "resolve"])}, optional={
            "queue": st.one_of(st.sampled_from(["delivery", "lead-processing"]), texts),
            "error_contains": st.one_of(st.just("boom"), texts), "failed_after": st.one_of(st.just("2020-01-01T00:00:00Z"), texts),
            "failed_before": st.one_of(st.just("2100-01-01T00:00:00+01:00"), texts), "notes": st.text(max_size=50),
            "dry_run": st.one_of(st.booleans(), leaves)}),
        st.fixed_dictionaries({}, optional={"action": st.one_of(texts, values), "queue": values,
                                            "error_contains": values, "failed_after": values, "dry_run": values,
                                            "extra": values}),
        values,
    ),
    mangle=st.booleans(), content_type=content_types, params=query_params, data=st.data(),
)
def test_bulk_fuzz(token_client, document, mangle, content_type, params, data):
    with rolled_back():
        send_to_entries(token_client, "POST", with_query("/api/admin/dead-letter-queue/bulk", params), document,
                        mangle, content_type, data)


@fuzzes("GET /api/admin/workers/health")
@fuzz_settings
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]), params=query_params,
       raw=st.one_of(st.just(b""), raw_bodies(values)))
def test_workers_health_fuzz(token_client, method, params, raw):
    with rolled_back():
        response = token_client.generic(method, with_query("/api/admin/workers/health", params), raw, "application/json")
        assert_answer_ok(response, method)
        if method in ("GET", "HEAD"):
            assert response.status_code == 200
