"""Fuzz what tests/fuzz/test_api_fuzz.py does not: a lead's delivery (GET and POST
/api/admin/leads/<id>/deliver), /metrics, /healthz, /api/openapi.json; every method on every path the
OpenAPI document lists (and unknown paths under /api/) from every kind of caller; and the tracking links
of emails with arbitrary, tampered and foreign tokens.

Never a 500; an API refusal is a 4xx JSON whose `error` names the problem; a refused request stores and
changes nothing (row counts and the tracking counters are compared before and after).
"""
import json
import uuid
from urllib.parse import quote

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, RequestFactory
from hypothesis import event, given, strategies as st

from access.auth import Scope, create_token
from delivery.models import DeliveryRun, DeliveryStep
from delivery.services import start_delivery
from dlq.models import DeadLetter
from emails import tracking
from emails.models import EmailEvent, Message, Suppression
from leads.models import Lead, LeadSubmission, WebhookIdempotencyKey
from resilience.http import csrf_failure
from resilience.openapi import document
from sites.services import enqueue_site_generation
from tests.fuzz.coverage import fuzzes
from tests.fuzz.strategies import (assert_answer_ok, content_types, fuzz_settings, query_params, raw_bodies,
                                   rolled_back, texts, values, with_query)
from workers.models import Job

pytestmark = pytest.mark.django_db

# Every method a client may send: the ones HTTP defines, WebDAV's, and made-up tokens.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "get", "FOO",
           "X" * 40]
methods = st.one_of(st.sampled_from(METHODS), st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-_", min_size=1, max_size=12))
bodies = st.one_of(st.just(b""), st.just(b"{}"), raw_bodies(values))


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def stored() -> tuple:
    """What any request could store or change, in one query: compared before and after a refused one."""
    counts = [f"(SELECT count(*) FROM {_table(model)})" for model in (
        Lead, LeadSubmission, WebhookIdempotencyKey, Job, DeadLetter, DeliveryRun, DeliveryStep, LogEntry, Suppression,
        EmailEvent)]
    counts += [f"(SELECT count(*) FROM {_table(Lead)} WHERE won_at IS NOT NULL)",
               f"(SELECT count(*) FROM {_table(DeadLetter)} WHERE resolved)",
               f"(SELECT coalesce(sum(open_count), 0) || '/' || coalesce(sum(click_count), 0) || '/' || "
               f"count(unsubscribed_at) FROM {_table(Message)})"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(counts))
        return cursor.fetchone()


def a_lead(email: str = "fuzz@acme.io") -> Lead:
    """A qualified lead with the site-generation job its qualification enqueued."""
    lead = Lead.objects.create(email=email, company="Acme", status=Lead.Status.QUALIFIED, score=80)
    enqueue_site_generation(lead)
    return lead


# --- a lead's delivery ---------------------------------------------------------------------------

def mostly(common, rare, percent: int = 75):
    """`common` in about `percent` % of the examples (st.one_of's choice is not an even one)."""
    return st.integers(0, 99).flatmap(lambda n: common if n < percent else rare)


lead_ids = mostly(st.sampled_from(["fresh", "fresh", "with-run", "with-run", "cold", "missing", "zero"]), st.one_of(
    st.sampled_from([str(10**20), "9223372036854775808", "2147483648", "-1", "1.5", "%00", "0x10"]),
    texts.map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe=""))))


@fuzzes("GET /api/admin/leads/{lead_id}/deliver", "POST /api/admin/leads/{lead_id}/deliver")
@fuzz_settings
@given(method=st.sampled_from(["POST"] * 4 + ["GET"] * 3 + ["HEAD", "PUT", "DELETE", "PATCH"]), which=lead_ids,
       raw=st.one_of(st.just(b""), bodies), content_type=content_types, params=query_params, read_only=st.booleans())
def test_lead_delivery_fuzz(method, which, raw, content_type, params, read_only):
    with rolled_back():
        client = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('fuzz', scopes=['read'] if read_only else Scope.values)[1]}")
        lead = a_lead()
        if which == "with-run":
            start_delivery(lead.pk, by="setup")
        # Disqualified, so no site-generation job: it never gets a site, and is never marked won.
        cold = Lead.objects.create(email="cold@acme.io", status=Lead.Status.DISQUALIFIED, score=20)
        lead_id = {"fresh": str(lead.pk), "with-run": str(lead.pk), "cold": str(cold.pk),
                   "missing": str(lead.pk + 1000), "zero": "0"}.get(which, which)
        before = stored()

        response = client.generic(method, with_query(f"/api/admin/leads/{lead_id}/deliver", params), raw,
                                  content_type)

        assert_answer_ok(response, method)
        if response.status_code >= 400:
            assert stored() == before, f"a refused {method} changed something"
        elif method == "POST":
            assert which != "cold", f"a lead that never gets a site was started: {response.content!r}"
            assert response.status_code == (201 if which == "fresh" else 200), response.content
            assert DeliveryRun.objects.filter(lead=lead).count() == 1


# --- the read-only endpoints -----------------------------------------------------------------------

headers = st.dictionaries(st.sampled_from(["HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_X_FORWARDED_FOR", "HTTP_RANGE",
                                           "HTTP_IF_NONE_MATCH", "HTTP_COOKIE", "HTTP_HOST"]),
                          # As a server hands them to Django: the bytes received, read as latin-1.
                          st.one_of(texts.map(lambda t: t.encode("utf-8", "surrogatepass").decode("latin-1")),
                                    st.sampled_from(["*/*", "gzip", "bytes=0-1", "sessionid=x", "127.0.0.1"])),
                          max_size=3)


@fuzzes("GET /metrics", "GET /healthz", "GET /api/openapi.json")
@fuzz_settings
@given(path=st.sampled_from(["/metrics", "/healthz", "/api/openapi.json"]),
       method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
       params=query_params, raw=bodies, extra=headers)
def test_read_only_endpoints_fuzz(path, method, params, raw, extra):
    with rolled_back():
        client = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('fuzz')[1]}")
        before = stored()
        response = client.generic(method, with_query(path, params), raw, "application/json", **extra)

        assert_answer_ok(response, method)
        assert stored() == before
        if response.status_code == 400:  # a Host header not in ALLOWED_HOSTS: refused before any view
            assert "HTTP_HOST" in extra
            assert method == "HEAD" or "Invalid HTTP_HOST header" in response.json()["error"]
        elif method in ("GET", "HEAD"):
            assert response.status_code == 200, response.content[:300]
        else:  # a method the view does not serve: 405, whatever the token's scopes
            assert response.status_code == 405, response.content


# --- every method, every path, every kind of caller -------------------------------------------------

OPERATION_PATHS = sorted(document()["paths"])
CALLERS = ["anonymous", "wrong token", "malformed authorization", "read-only token", "write token", "non-staff user",
           "staff without permissions"]


def caller(kind: str) -> Client:
    if kind == "anonymous":
        return Client()
    if kind == "wrong token":
        return Client(HTTP_AUTHORIZATION="Bearer rsl_" + "x" * 43)
    if kind == "malformed authorization":
        return Client(HTTP_AUTHORIZATION="Basic b3BzOnB3")
    if kind.endswith("token"):
        return Client(HTTP_AUTHORIZATION=f"Bearer {create_token('fuzz', scopes=Scope.values if kind == 'write token' else ['read'])[1]}")
    client = Client()
    client.force_login(User.objects.create(username="fuzzer", is_staff=kind != "non-staff user"))  # no password: no hashing
    return client


@fuzz_settings
@given(path=mostly(st.sampled_from(OPERATION_PATHS),
                   texts.map(lambda t: "/api/" + quote(t.encode("utf-8", "surrogatepass"), safe="/")), 85),
       method=mostly(st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE"]), methods, 60), who=st.sampled_from(CALLERS), params=query_params, raw=bodies, content_type=content_types)
def test_every_method_on_every_path_from_every_caller(path, method, who, params, raw, content_type):
    with rolled_back():
        client = caller(who)
        before = stored()

        response = client.generic(method, with_query(path.replace("{lead_id}", "1"), params), raw, content_type)

        event(f"{who}: {response.status_code}")
        assert_answer_ok(response, method)
        if response.status_code >= 400:
            assert stored() == before, f"a refused {method} {path} from {who} changed something"
        # Only the webhook (its own secret) and /healthz (public) answer a caller without admin rights.
        if who not in ("read-only token", "write token", "staff without permissions") and path.startswith("/api/admin"):
            assert response.status_code in (401, 403, 404), (who, method, path, response.status_code)


# --- the tracking links inside emails ----------------------------------------------------------------

SITE = "https://sites.example.com/sites/abc/"


def a_message() -> Message:
    return Message.objects.create(key=f"fuzz-{uuid.uuid4()}", kind=Message.Kind.OUTREACH, to_email="jane@acme.io",
                                  subject="Hi", text_body="Hi", links=[SITE], status=Message.Status.SENT)


def tamper(token: str, position: int, char: str) -> str:
    position %= max(len(token), 1)
    changed = token[:position] + char + token[position + 1:]
    return changed if changed != token else token + char


@st.composite
def tracking_tokens(draw, message: Message) -> tuple[str, str, bool | None]:
    """(endpoint, token, whether it is the genuine token of that endpoint for this message: None for
    a genuine token of a message that does not exist)."""
    endpoint = draw(st.sampled_from(["open", "click", "unsubscribe"]))
    purpose = {"open": tracking.OPEN, "click": tracking.CLICK, "unsubscribe": tracking.UNSUBSCRIBE}[endpoint]
    link = 0 if endpoint == "click" else None
    genuine = tracking.make_token(purpose, message.id, link)
    how = draw(st.sampled_from(["genuine", "tampered", "tampered", "other purpose", "foreign message", "other link",
                                "text", "signature stripped"]))
    if how == "genuine":
        return endpoint, genuine, True
    if how == "tampered":
        return endpoint, tamper(genuine, draw(st.integers(0, 200)), draw(st.sampled_from("AZaz09-_:.%"))), False
    if how == "other purpose":
        other = draw(st.sampled_from([p for p in (tracking.OPEN, tracking.CLICK, tracking.UNSUBSCRIBE) if p != purpose]))
        return endpoint, tracking.make_token(other, message.id, link), False
    if how == "foreign message":  # signed by us (so not an attacker's), for a message that does not exist
        return endpoint, tracking.make_token(purpose, uuid.uuid4(), link), None
    if how == "other link":  # a link the message did not contain (a redirect anywhere)
        return "click", tracking.make_token(tracking.CLICK, message.id, draw(st.integers(1, 10**6))), False
    if how == "signature stripped":
        return endpoint, genuine.rpartition(":")[0], False
    return endpoint, quote(draw(texts).encode("utf-8", "surrogatepass"), safe=""), False


@fuzzes()  # not in the OpenAPI document (links inside emails, not an API), fuzzed all the same
@fuzz_settings
@given(method=st.sampled_from(["GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE"]), data=st.data())
def test_tracking_links_with_any_token(client, method, data):
    with rolled_back():
        message = a_message()
        endpoint, token, genuine = data.draw(tracking_tokens(message))
        url = f"/email/{endpoint}/{token}" + (".gif" if endpoint == "open" else "")
        before = stored()

        response = client.generic(method, url)

        kind = {True: "genuine", False: "forged", None: "unknown message"}[genuine]
        event(f"{endpoint} {kind} {method}: {response.status_code}")
        assert response.status_code < 500, (url, response.status_code)
        if response.status_code >= 300 and response.status_code < 400:
            assert response["Location"] == SITE, response["Location"]  # only ever a link the message had
        if genuine is False:
            assert response.status_code in (404, 405), (url, method, response.status_code)
        if genuine is None:  # only what records nothing: the unsubscribe page (a button), the pixel to HEAD
            assert response.status_code in (404, 405) or (endpoint, method) in (
                ("unsubscribe", "GET"), ("unsubscribe", "HEAD"), ("open", "HEAD")), (url, method)
        if not genuine:
            assert stored() == before, f"a {kind} {endpoint} token changed something"


def test_a_csrf_refusal_is_json_on_the_api_and_a_page_in_the_admin(django_user_model):
    """Every API view handles CSRF itself today; one that did not would still answer JSON."""
    api = csrf_failure(RequestFactory().post("/api/anything"), "CSRF token missing.")
    assert api.status_code == 403 and api["Content-Type"] == "application/json"
    assert json.loads(api.content)["error"] == "CSRF check failed: CSRF token missing."
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="x"))
    page = client.post("/admin/logout/")
    assert page.status_code == 403 and page["Content-Type"].startswith("text/html")


# --- the email providers' signed webhooks ------------------------------------------------------------

def _postmark_event(draw) -> dict:
    return draw(st.fixed_dictionaries(
        {"RecordType": st.sampled_from(["Delivery", "Bounce", "SpamComplaint", "Open", "Click", "SubscriptionChange",
                                        "Inbound", "Other"])},
        optional={"Type": st.sampled_from(["HardBounce", "SoftBounce", "Transient", "SpamComplaint", "Weird"]),
                  "ID": values, "MessageID": values, "Email": values, "Recipient": values, "BouncedAt": values,
                  "DeliveredAt": values, "ReceivedAt": values, "Metadata": values, "Details": values}))


@fuzzes("POST /email/events/{provider}/")
@fuzz_settings
@given(provider=st.sampled_from(["postmark", "mailgun"]), login=st.sampled_from(["right", "wrong", "none"]),
       method=st.sampled_from(["POST"] * 6 + ["GET", "HEAD", "PUT"]), data=st.data(), content_type=content_types)
def test_provider_webhooks_with_any_post(settings, provider, login, method, data, content_type):
    """Signed, unsigned and wrongly signed posts with any body: never a 500; a refusal records nothing."""
    from tests.emails.provider_keys import MAILGUN_SIGNING_KEY, WEBHOOK_LOGIN, basic_auth, mailgun_post

    settings.EMAIL_PROVIDER = provider
    settings.ANYMAIL = ({"POSTMARK_SERVER_TOKEN": "POSTMARK_API_TEST", "WEBHOOK_SECRET": [WEBHOOK_LOGIN]}
                        if provider == "postmark"
                        else {"MAILGUN_API_KEY": "k", "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY})
    if data.draw(st.booleans()):
        event_data = _postmark_event(data.draw) if provider == "postmark" else data.draw(
            st.dictionaries(st.sampled_from(["event", "severity", "id", "timestamp", "recipient", "message",
                                             "user-variables", "delivery-status"]), values, max_size=8))
        raw = (json.dumps(event_data, default=str).encode() if provider == "postmark" else
               mailgun_post(event_data, key=MAILGUN_SIGNING_KEY if login == "right" else "wrong-signing-key"))
    else:
        raw = data.draw(bodies)
    auth = {"right": basic_auth(), "wrong": basic_auth("postmark-hooks:not-the-password"), "none": {}}[login]
    with rolled_back():
        before = stored()
        response = Client().generic(method, f"/email/events/{provider}/", raw, content_type, **auth)
        assert_answer_ok(response, method)
        if response.status_code >= 400:
            assert stored() == before, f"a refused post to the {provider} webhook stored something"
