"""Fuzz the webhook and every admin API endpoint through Django's test client, with valid
credentials: generated bodies (NUL, lone surrogates, NaN and Infinity, numbers out of range, deep
nesting, broken UTF-8, truncated JSON), headers and query parameters, odd ids.

Whatever comes in: never a 500; every refusal a 4xx JSON whose `error` names the problem; nothing
stored or changed by a refused request.
"""
import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st

from access.auth import create_token
from dlq.models import DeadLetter
from dlq.services import record_dead_letter
from leads.models import Lead, LeadSubmission, WebhookIdempotencyKey
from workers.models import Job

pytestmark = pytest.mark.django_db

EXAMPLES = 200
fuzz_settings = hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what gets generated ---------------------------------------------------------------------------

ODD_STRINGS = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "\U0001F600", "caf\u00e9", "", " ", "\t\n",
               "password=hunter2", "https://u:p@h.io", "<script>alert(1)</script>", "'; drop table x; --",
               "a" * 300, "2147483648", "NaN", "null"]
texts = st.one_of(st.text(max_size=16), st.sampled_from(ODD_STRINGS))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2147483647, 2147483648, 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    leaves, lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
    max_leaves=10,
)

# Tokens json.dumps cannot write: spliced into the serialised body as a field's raw value.
RAW_TOKENS = [b"NaN", b"-Infinity", b"Infinity", b"1e400", b"-1e400", b"1" + b"0" * 5000, b'"\xed\xa0\x80"',
              b'"\xff\xfe"', b'"a\x00b"', b'"\\u0000"', b'"\\ud800"', b'"\\udc00\\ud800"', b"[" * 40 + b"]" * 40,
              b"[" * 3000 + b"]" * 3000, b'{"a":' * 50 + b"1" + b"}" * 50]


@st.composite
def raw_bodies(draw, documents):
    """A serialised document, then maybe mangled: a raw token spliced in, deep nesting around it,
    cut short, or no JSON at all."""
    raw = json.dumps(draw(documents), allow_nan=True).encode()  # ensure_ascii: NUL, surrogates as \\u escapes
    how = draw(st.sampled_from(["as is"] * 4 + ["splice", "splice", "nest", "truncate", "bytes"]))
    if how == "splice" and b"{" in raw:
        token = draw(st.sampled_from(RAW_TOKENS))
        key = json.dumps(draw(texts)).encode()
        raw = raw.replace(b"{", b"{" + key + b": " + token + (b"" if raw.find(b"{}") == raw.find(b"{") else b", "), 1)
    elif how == "nest":
        depth = draw(st.sampled_from([30, 33, 1000, 20000]))
        raw = b"[" * depth + raw + b"]" * depth
    elif how == "truncate" and raw:
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw) - 1))]
    elif how == "bytes":
        raw = draw(st.binary(max_size=40))
    return raw


# Mostly leads the webhook accepts, so that the accepting path is fuzzed too.
good_email = st.sampled_from(["jane@acme.io", "bob@example.com", "Ann@Sub.Example.org"])
lead = st.builds(
    lambda base, extra: {**extra, **base},
    st.fixed_dictionaries({"email": st.one_of(good_email, good_email, good_email, texts, numbers, st.none())}, optional={
        "employee_count": st.one_of(numbers, texts), "company": st.one_of(texts, values),
        "website": texts, "password": texts,
    }),
    st.dictionaries(texts, values, max_size=3),
)
clean_leads = st.lists(st.fixed_dictionaries({"email": good_email}, optional={
    "first_name": st.text(max_size=10), "employee_count": st.integers(0, 10**6), "tags": st.lists(st.text(max_size=5))}),
    min_size=1, max_size=3)
webhook_documents = st.one_of(clean_leads, clean_leads, st.lists(lead, min_size=1, max_size=4), st.lists(st.one_of(lead, values), max_size=4),
                              lead, values)

query_params = st.dictionaries(
    st.one_of(st.sampled_from(["id", "queue", "limit", "resolved", "x"]), texts),
    st.one_of(texts, numbers.map(str), st.uuids().map(str), st.sampled_from(["delivery", "lead-processing"])),
    max_size=3,
)
content_types = st.sampled_from(["application/json"] * 8 + ["application/json; charset=utf-8", "text/plain", "",
                                 "application/x-www-form-urlencoded", "application/json\x00"])
existing = st.sampled_from(["existing-0", "existing-1"])
ids = st.one_of(existing, existing, existing, st.uuids().map(str), texts, numbers, st.none(),
                st.lists(st.integers(), max_size=2), st.dictionaries(texts, leaves, max_size=1))


def with_query(path: str, params: dict) -> str:
    """Percent-encode every byte, surrogates included, so the query string can carry anything."""
    encode = lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")  # noqa: E731
    return path + ("?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in params.items()) if params else "")


# --- what every answer must be -------------------------------------------------------------------

def assert_answer_ok(response, method: str) -> None:
    event(f"{method} {response.status_code}")  # --hypothesis-show-statistics: what the fuzz reached
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400 and method != "HEAD":
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        body = json.loads(response.content)
        assert body["success"] is False
        assert isinstance(body["error"], str) and len(body["error"]) > 5


@pytest.fixture
def token_client(db) -> Client:
    _, secret = create_token("fuzz")
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each example starts from the same few rows: what it stored is rolled back after its checks."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


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

@fuzz_settings
@given(method=st.sampled_from(["GET", "HEAD"]), params=query_params)
def test_dead_letter_list_fuzz(token_client, method, params):
    with rolled_back():
        entries = dead_entries(1)
        params = {k: resolve_id(v, entries * 2) for k, v in params.items()}
        response = token_client.generic(method, with_query("/api/admin/dead-letter-queue", params))
        assert_answer_ok(response, method)


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


@fuzz_settings
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]), params=query_params,
       raw=st.one_of(st.just(b""), raw_bodies(values)))
def test_workers_health_fuzz(token_client, method, params, raw):
    with rolled_back():
        response = token_client.generic(method, with_query("/api/admin/workers/health", params), raw, "application/json")
        assert_answer_ok(response, method)
        if method in ("GET", "HEAD"):
            assert response.status_code == 200
