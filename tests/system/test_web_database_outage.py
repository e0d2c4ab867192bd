"""The web server while PostgreSQL cannot be reached: a 503 with Retry-After that says so, never a 500,
and the same request accepted once it is back (the webhook's Idempotency-Key makes the retry safe)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from leads.models import LeadSubmission
from tests.system.processes import TcpProxy, database_proxy, database_url, wait_for
from tests.system.test_web_server import WEBHOOK_HEADERS, lead, request, web, web_process  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxy() -> TcpProxy:
    proxy = database_proxy()
    proxy.start()
    yield proxy
    proxy.cut()


@pytest.fixture
def web_env(proxy) -> dict[str, str]:
    # The web server reaches PostgreSQL through the proxy, so the test can take the database away.
    return {"TEST_DATABASE_URL": database_url(proxy), "CLAY_WEBHOOK_SECRET": "test-clay-secret"}


def answer(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body), reading error answers too."""
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_while_postgresql_is_unreachable_the_webhook_and_admin_answer_503_with_retry_after(web, proxy):
    headers = {**WEBHOOK_HEADERS, "Idempotency-Key": "outage-retry-1"}
    body = lead("outage@example.com")

    proxy.cut()
    status, response_headers, raw = answer(f"{web}/api/webhooks/clay", body, headers)
    assert status == 503, raw
    assert response_headers["Retry-After"] == "5"
    assert json.loads(raw) == {"success": False,
                               "error": "the database is unavailable; nothing was stored, try again in 5 s"}
    # Checking a token needs the database too.
    status, response_headers, raw = answer(f"{web}/api/admin/workers/health",
                                           headers={"Authorization": "Bearer some-token"})
    assert (status, response_headers["Retry-After"]) == (503, "5"), raw
    assert "database is unavailable" in json.loads(raw)["error"]
    # Liveness does not touch the database: supervision must not restart the web app for an outage.
    assert answer(f"{web}/healthz")[0] == 200

    proxy.restore()
    # The client's retry, as a webhook sender does after a 503: accepted once, stored once.
    assert wait_for(lambda: answer(f"{web}/api/webhooks/clay", body, headers)[0] == 202, 30)
    status, data, _ = request(f"{web}/api/webhooks/clay", body, headers)
    assert status == 202 and data["accepted"] == 1
    assert LeadSubmission.objects.filter(payload__email="outage@example.com").count() == 1
