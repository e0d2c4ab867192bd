"""The security matrix: every protected page and endpoint against every kind of caller that must be refused.

Pages and endpoints are derived, not listed: every URL the admin site serves (each registered ModelAdmin's
changelist, add, change, delete and history pages and its own extra URLs, the workers dashboard and its
data), every operation of the OpenAPI document (the admin API, /metrics; the webhook), and the tracking
links. A new admin model or endpoint is walked without touching this file.

Callers: anonymous, a wrong bearer token, a read-only token writing, a token with every scope but the one
the operation names (its x-required-scope in the document), a logged-in user who is not staff, a staff user
without the permission (and one with view permissions only, writing). Each refusal is checked
for its status and, on the API, for a JSON error naming the problem; and nothing may change.

Flower's login (every page, /metrics and /healthcheck included) is checked against real workers in
tests/system/test_flower.py; the configured secrets' absence from every log in tests/system/test_redaction.py.
"""
from __future__ import annotations

import re
import uuid

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from access.auth import Scope, create_token
from dlq.models import DeadLetter
from emails import tracking
from emails.models import Message
from leads.models import Lead
from resilience.openapi import document
from tests.emails.provider_keys import signing_settings
from tests.fuzz.test_endpoints_fuzz import stored
from workers.models import Job

pytestmark = pytest.mark.django_db

# --- what is walked -----------------------------------------------------------------------------------

# Admin URLs anyone may reach: the login page, and logging out (nothing to protect).
PUBLIC_ADMIN_NAMES = {"login", "logout"}
# Admin URLs a staff user needs no model permission for: the index (it lists only what the user may see),
# the admin's translations, changing one's own password, and "view on site" (a redirect to a public page).
STAFF_ADMIN_NAMES = {"index", "jsi18n", "password_change", "password_change_done", "view_on_site"}


def admin_urls() -> list[tuple[str, str]]:
    """(concrete URL, its name) for every URL of the admin site (admin.site.get_urls, with every
    ModelAdmin's URLs in it) and the pages added beside it in the URLconf (the workers dashboard, the
    operator's search, a job's story)."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and "(?P<url>" not in route:  # the catch-all 404
                found.extend((concrete_admin_url(route, app), entry.name or route) for app in app_labels(route))

    walk(admin.site.get_urls(), "/admin/")
    return found + [("/admin/workers/", "workers-dashboard"), ("/admin/workers/data", "workers-dashboard-data"),
                    ("/admin/workers/search/?q=jane%40acme.io", "console-search"),
                    (f"/admin/workers/job/{uuid.UUID(int=1)}/story/", "job-story")]


def app_labels(route: str) -> list[str | None]:
    match = re.search(r"\(\?P<app_label>([^)]+)\)", route)
    return match.group(1).split("|") if match else [None]


def concrete_admin_url(route: str, app_label: str | None) -> str:
    if app_label:
        return "/admin/" + app_label + "/"
    route = re.sub(r"<(?:\w+:)?(object_id|pk|id|content_type_id)>", "1", route)
    assert "<" not in route and "(?P" not in route, f"a new kind of admin URL parameter: {route}"
    return route


ADMIN_URLS = admin_urls()
MODEL_ADMIN_URLS = [(url, name) for url, name in ADMIN_URLS
                    if name not in PUBLIC_ADMIN_NAMES | STAFF_ADMIN_NAMES]

API_OPERATIONS = [(method.upper(), path.replace("{lead_id}", "1"))
                  for path, item in document()["paths"].items() for method in item if method != "parameters"]
ADMIN_API = [(method, path) for method, path in API_OPERATIONS
             if path not in ("/api/webhooks/clay", "/healthz")  # their own gates, below
             and not path.startswith("/email/events/")]  # the providers' signatures, below
# Every provider whose webhook the document lists: its signature is the only credential there is.
EVENT_PROVIDERS = document()["paths"]["/email/events/{provider}/"]["parameters"][0]["schema"]["enum"]
WRITES = [(method, path) for method, path in ADMIN_API if method not in ("GET", "HEAD")]


# --- who asks -------------------------------------------------------------------------------------------

def session(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(*codenames: str, name: str = "staffer") -> Client:
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return session(user)


def view_only_staff() -> Client:
    """Every view permission the project has, and no other."""
    return staff(*Permission.objects.filter(codename__startswith="view_").values_list("codename", flat=True),
                 name="viewer")


def call(client: Client, method: str, url: str) -> HttpResponse:
    return client.generic(method, url, b"{}", "application/json")


def refusal(response) -> str:
    """The API's error text (it must be JSON naming the problem)."""
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert body["success"] is False and len(body["error"]) > 5, body
    return body["error"]


def check_all(cells: list[tuple[str, str]], answer, expect) -> None:
    """Run every cell, then fail once listing every cell whose answer was wrong."""
    wrong = []
    for method, url in cells:
        before = stored()
        response = answer(method, url)
        problem = expect(method, url, response)
        if stored() != before:
            problem = (problem or "") + " and it changed something"
        if problem:
            wrong.append(f"{method} {url}: {response.status_code} {problem}")
    assert not wrong, f"{len(wrong)} of {len(cells)} refused wrongly:\n" + "\n".join(wrong)


# --- the admin pages -------------------------------------------------------------------------------------

def test_the_walk_finds_every_registered_model_admin_and_the_dashboard():
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert {base, base + "add/", base + "1/change/", base + "1/delete/", base + "1/history/"} <= {
            url for url, _ in ADMIN_URLS}, model
    assert ("/admin/workers/data", "workers-dashboard-data") in ADMIN_URLS
    assert {"console-search", "job-story"} <= {name for _, name in ADMIN_URLS}
    assert len(MODEL_ADMIN_URLS) > 5 * len(admin.site._registry)


def to_login(method, url, response) -> str | None:
    if response.status_code != 302 or not response["Location"].startswith("/admin/login/"):
        return "not sent to the login page"
    return None


@pytest.mark.parametrize("who", ["anonymous", "wrong token", "read-only token", "non-staff user"])
def test_every_admin_page_sends_a_caller_who_is_not_staff_to_the_login_page(who):
    client = {"anonymous": lambda: Client(),
              "wrong token": lambda: Client(HTTP_AUTHORIZATION="Bearer rsl_" + "w" * 43),
              "read-only token": lambda: Client(HTTP_AUTHORIZATION=f"Bearer {create_token('r')[1]}"),
              "non-staff user": lambda: session(User.objects.create_user("visitor", password="x"))}[who]()
    pages = [(method, url) for url, name in ADMIN_URLS if name not in PUBLIC_ADMIN_NAMES for method in ("GET", "POST")]
    check_all(pages, lambda method, url: client.generic(method, url), to_login)


def test_every_model_admin_page_refuses_staff_without_the_permission():
    client = staff()

    def forbidden(method, url, response) -> str | None:
        if response.status_code == 403:
            return None
        if response.status_code == 404 and re.fullmatch(r"/admin/\w+/", url):
            return None  # an app the user may see nothing of: Django's app list does not say it exists
        if response.status_code == 405 and method == "POST":
            return None  # a page that only reads (the dashboard) turns away a POST before anything else
        if response.status_code == 302 and response["Location"] == url + "change/":
            return None  # Django's old-style URL of an object: a redirect to its change page, itself refused
        if response.status_code == 302 and url.endswith("/history/") and response["Location"] == "/admin/":
            return None  # no such object: Django's history page says so before it checks (real rows: below)
        return "expected 403"

    check_all([(m, url) for url, _ in MODEL_ADMIN_URLS for m in ("GET", "POST")],
              lambda method, url: client.generic(method, url), forbidden)
    index = client.get("/admin/")
    assert index.status_code == 200 and b"/admin/dlq/" not in index.content  # it lists nothing


def test_the_pages_of_real_rows_refuse_staff_without_the_permission():
    token, _ = create_token("someone")
    entry = DeadLetter.objects.create(queue_name="delivery", job_id="j1", job_data={"email": "jane@acme.io"},
                                      error_message="boom")
    lead = Lead.objects.create(email="jane@acme.io", status=Lead.Status.QUALIFIED)
    rows = [token, entry, lead, token.user, Job.objects.create(queue="delivery", task="t", payload={},
                                                                next_attempt_at=timezone.now())]
    client = staff()
    for row in rows:
        base = f"/admin/{row._meta.app_label}/{row._meta.model_name}/{row.pk}/"
        for page in ("change/", "delete/", "history/"):
            response = client.get(base + page)
            assert response.status_code == 403, (base + page, response.status_code)
            assert b"jane@acme.io" not in response.content
    # The console's pages of the same rows: the job's story, and the search that would find the lead.
    for url in (f"/admin/workers/job/{rows[-1].pk}/story/", "/admin/workers/search/?q=jane%40acme.io"):
        response = client.get(url)
        assert response.status_code == 403 and b"jane@acme.io</" not in response.content, url


def test_view_permissions_alone_change_nothing_through_the_admin():
    """Every add, change and delete page, posted by a user who may view everything."""
    client = view_only_staff()
    writes = [url for url, name in MODEL_ADMIN_URLS if name and name.endswith(("_add", "_delete"))]
    assert writes

    def refused(method, url, response) -> str | None:
        return None if response.status_code == 403 else "expected 403"

    check_all([("POST", url) for url in writes], lambda method, url: client.post(url, {"post": "yes"}), refused)


def test_view_permissions_alone_run_no_admin_action_on_a_whole_filter():
    """Every action of every registered ModelAdmin (bulk ones included), posted confirmed on everything the
    change list selects ("Select all", post=yes) by a user who may view everything: nothing changes."""
    from django.contrib.admin.models import LogEntry

    client = view_only_staff()
    job = Job.objects.create(queue="delivery", task="t", payload={}, next_attempt_at=timezone.now())
    dead = Job.objects.create(queue="delivery", task="t", payload={}, state=Job.State.DEAD,
                              next_attempt_at=timezone.now(), finished_at=timezone.now())
    DeadLetter.objects.create(queue_name="delivery", job_id=str(dead.id), job_data={}, error_message="boom")

    def snapshot():
        return (list(Job.objects.order_by("id").values_list("id", "state", "next_attempt_at")),
                list(DeadLetter.objects.order_by("id").values_list("id", "resolved")), LogEntry.objects.count())

    before = snapshot()
    posted = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "axes":
            continue  # django-axes' own admin needs its login middleware's request attributes (force_login skips it)
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        some = model._default_manager.values_list("pk", flat=True).first() or job.pk
        for _func, name, _description in model_admin._get_base_actions():
            response = client.post(url, {"action": name, "select_across": "1", "index": "0", "post": "yes",
                                         "_selected_action": [str(some)], "confirmed_count": "100"})
            assert response.status_code < 500, (url, name, response.status_code)
            posted.append(name)
    assert {"cancel_selected", "run_now_selected", "requeue_selected", "resolve_selected"} <= set(posted)
    assert snapshot() == before


# --- the admin API, /metrics ---------------------------------------------------------------------------

def expect_api(status: int, words: str):
    def check(method, url, response) -> str | None:
        if response.status_code != status:
            return f"expected {status}"
        if method != "HEAD" and words not in refusal(response):
            return f"error does not say {words!r}: {response.json()['error']!r}"
        return None

    return check


@pytest.mark.parametrize("who, header, status, words", [
    ("anonymous", None, 401, "authentication required"),
    ("wrong token", "Bearer rsl_" + "w" * 43, 401, "not valid"),
    ("malformed authorization", "Basic b3BzOnB3", 401, "must be 'Bearer <token>'"),
])
def test_every_admin_api_operation_refuses_callers_without_credentials(who, header, status, words):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    check_all(ADMIN_API, lambda method, url: call(client, method, url), expect_api(status, words))
    assert all(call(client, method, url).has_header("WWW-Authenticate") for method, url in ADMIN_API)


def test_a_read_only_token_may_not_write_anywhere():
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('monitor')[1]}")
    assert WRITES
    check_all(WRITES, lambda method, url: call(client, method, url), expect_api(403, "lacks the scope"))


def required_scope(method: str, url: str) -> str:
    path = url.replace("/leads/1/", "/leads/{lead_id}/")
    return document()["paths"][path][method.lower()]["x-required-scope"]


def test_each_admin_api_operation_names_a_scope_and_every_kind_of_scope_is_needed_somewhere():
    scopes = {(method, url): required_scope(method, url) for method, url in ADMIN_API}
    assert all(scope in Scope.values for scope in scopes.values()), scopes
    assert {scope for (method, _), scope in scopes.items() if method == "GET"} == {"read"}
    assert {"dlq", "deliver"} <= set(scopes.values())


def test_a_token_with_every_scope_but_the_one_an_operation_needs_is_refused_and_told_which():
    clients = {scope: Client(HTTP_AUTHORIZATION="Bearer " + create_token(
        f"all-but-{scope}", scopes=[other for other in Scope.values if other != scope])[1]) for scope in Scope.values}

    def refused_naming_it(method, url, response) -> str | None:
        scope = required_scope(method, url)
        problem = expect_api(403, f"lacks the scope {scope}")(method, url, response)
        if problem is None and method != "HEAD" and response.json().get("missingScope") != scope:
            return f"missingScope is not {scope!r}: {response.json()!r}"
        return problem

    check_all(ADMIN_API, lambda method, url: call(clients[required_scope(method, url)], method, url),
              refused_naming_it)


def test_a_token_with_only_the_scope_an_operation_needs_is_let_through(redis_client):
    let_in = []
    for method, url in ADMIN_API:
        scope = required_scope(method, url)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(f'{method}-{url}', scopes=[scope])[1]}")
        response = call(client, method, url)
        # In: the view's own answer (its 400 to the empty body, its 404 to an unknown lead), never the gate's.
        let_in.append((method, url, response.status_code))
        assert response.status_code not in (401, 403), (method, url, response.content)
    assert len(let_in) == len(ADMIN_API)


def test_a_user_who_is_not_staff_is_refused_everywhere():
    client = session(User.objects.create_user("visitor", password="x"))
    check_all(ADMIN_API, lambda method, url: call(client, method, url), expect_api(403, "not staff"))


def test_staff_without_the_permission_is_refused_each_operation_and_told_which_permission():
    client = staff()
    needs_permission = [(m, url) for m, url in ADMIN_API if url != "/api/openapi.json"]  # it describes, holds nothing
    check_all(needs_permission, lambda method, url: call(client, method, url), expect_api(403, "lacks the permission"))


def test_view_permissions_alone_may_not_write_through_the_api():
    client = view_only_staff()
    check_all(WRITES, lambda method, url: call(client, method, url), expect_api(403, "lacks the permission"))


# --- the webhook ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("secret", [None, "", "wrong", "TEST-CLAY-SECRET", " test-clay-secret", "test-clay-secre",
                                    "test-clay-secret\x00"])
def test_the_webhook_refuses_a_wrong_or_missing_secret(client, secret):
    headers = {} if secret is None else {"HTTP_X_CLAY_SECRET": secret}
    before = stored()
    response = client.post("/api/webhooks/clay", b'[{"email": "jane@acme.io"}]', "application/json", **headers)
    assert response.status_code == 401 and "X-Clay-Secret" in refusal(response)
    assert stored() == before


# --- the email providers' webhooks ---------------------------------------------------------------------

@pytest.mark.parametrize("provider", EVENT_PROVIDERS)
@pytest.mark.parametrize("body, content_type", [(b"{}", "application/json"), (b"[]", "application/json"),
                                                (b"event=delivered", "application/x-www-form-urlencoded"),
                                                (b"\xff", "application/octet-stream")])
def test_an_unsigned_post_to_each_provider_webhook_is_refused_with_json(settings, provider, body, content_type):
    settings.EMAIL_PROVIDER, settings.ANYMAIL = provider, signing_settings(provider)
    for client in (Client(), session(User.objects.create_user(f"v-{provider}-{len(body)}", password="x")),
                   Client(HTTP_AUTHORIZATION=f"Bearer {create_token('r')[1]}"),
                   Client(HTTP_AUTHORIZATION="Basic " + "d3Jvbmc6d3JvbmctcGFzc3dvcmQ=")):  # wrong:wrong-password
        before = stored()
        response = client.post(f"/email/events/{provider}/", body, content_type)
        assert response.status_code in (400, 401, 403), (provider, response.status_code, response.content)
        assert "not signed" in refusal(response) or "login" in refusal(response), response.json()
        assert stored() == before


def test_a_provider_webhook_is_not_served_until_its_verification_is_configured(settings):
    settings.EMAIL_PROVIDER, settings.ANYMAIL = "mailgun", {"MAILGUN_API_KEY": "key-not-a-signing-key"}
    response = Client().post("/email/events/mailgun/", b"{}", "application/json")
    assert response.status_code == 404 and "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY" in refusal(response)
    settings.ANYMAIL = signing_settings("postmark")  # configured, but for another provider than EMAIL_PROVIDER
    assert Client().post("/email/events/postmark/", b"{}", "application/json").status_code == 404


# --- the tracking links -----------------------------------------------------------------------------------

SITE = "https://sites.example.com/sites/abc/"


@pytest.fixture
def message() -> Message:
    return Message.objects.create(key="matrix", kind=Message.Kind.OUTREACH, to_email="jane@acme.io", subject="Hi",
                                  text_body="Hi", links=[SITE], status=Message.Status.SENT)


def tracking_url(endpoint: str, token: str) -> str:
    return f"/email/{endpoint}/{token}" + (".gif" if endpoint == "open" else "")


@pytest.mark.parametrize("endpoint, purpose, link", [("open", tracking.OPEN, None), ("click", tracking.CLICK, 0),
                                                     ("unsubscribe", tracking.UNSUBSCRIBE, None)])
def test_tampered_tracking_tokens_are_refused_and_record_nothing(client, message, endpoint, purpose, link):
    genuine = tracking.make_token(purpose, message.id, link)
    value, _, signature = genuine.rpartition(":")
    forged = {
        "signature changed": f"{value}:{'A' if signature[0] != 'A' else 'B'}{signature[1:]}",
        "value changed": f"{uuid.uuid4().hex}{value[32:]}:{signature}",
        "signature removed": value,
        "another endpoint's token": tracking.make_token(tracking.CLICK if purpose != tracking.CLICK else tracking.OPEN,
                                                         message.id, link),
        "signed with another key": f"{value}:{signature[::-1]}",
    }
    before = stored()
    for name, token in forged.items():
        for method in ("GET", "POST") if endpoint == "unsubscribe" else ("GET",):
            assert client.generic(method, tracking_url(endpoint, token)).status_code == 404, (name, method)
    assert stored() == before
    assert client.get(tracking_url(endpoint, genuine)).status_code in (200, 302)  # the genuine one works


def test_a_click_never_redirects_to_a_host_the_message_did_not_link(client, message):
    foreign = [tracking.make_token(tracking.CLICK, message.id, index) for index in (1, 2, 99, -1)]
    for token in foreign:
        assert client.get(tracking_url("click", token)).status_code == 404
    # The link index is inside the signed value: naming another target means forging the signature.
    value, _, signature = tracking.make_token(tracking.CLICK, message.id, 0).rpartition(":")
    assert client.get(tracking_url("click", f"{value}:{signature}?next=https://evil.example/")).status_code == 302
    assert client.get(tracking_url("click", f"{value}:{signature}"))["Location"] == SITE
    message.refresh_from_db()
    assert message.click_count == 2  # only the genuine clicks counted
