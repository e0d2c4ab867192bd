"""The "notify the team" step against a real HTTP server on loopback: one POST with the step's
Idempotency-Key, retried on 5xx, dead-lettered on 4xx, never in MOCK_MODE."""
import json
from http.server import BaseHTTPRequestHandler

import pytest

from delivery import services
from delivery.models import DeliveryRun
from dlq.models import DeadLetter
from fakes.loopback import JsonServer
from tests.delivery.conftest import run_due_steps

pytestmark = pytest.mark.django_db(transaction=True)
SECRET_PATH = "/hooks/T0000/B0000/sekret-webhook-token"


class Webhook(JsonServer):
    def __init__(self) -> None:
        super().__init__(name="fake-webhook")
        self.received: list[tuple[dict, dict]] = []  # (headers, body)
        self.answers: list[int] = []  # status codes to answer, in turn; then 200
        self.url = f"http://127.0.0.1:{self.port}{SECRET_PATH}"

    def respond(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict, dict[str, str]]:
        self.received.append((dict(request.headers), json.loads(body)))
        return (self.answers.pop(0) if self.answers else 200), {}, {}


@pytest.fixture
def webhook(settings):
    hook = Webhook().start()
    settings.MOCK_MODE = False
    settings.DELIVERY_NOTIFY_WEBHOOK_URL = hook.url
    yield hook
    hook.stop()


def test_the_team_gets_one_post_with_the_steps_idempotency_key(lead, executions, webhook):
    run, _ = services.start_delivery(lead.pk, by="alice")
    assert run_due_steps() == ["succeeded"] * 4
    [(headers, body)] = webhook.received
    assert headers["Idempotency-Key"] == f"delivery-run-{run.pk}-notify_team"
    assert body == {"event": "delivery.handed_over", "run_id": run.pk, "lead_id": lead.pk,
                    "text": f"Lead won@acme.io is handed over (delivery run {run.pk})."}
    assert run.steps.get(name="notify_team").result == {"notified": "webhook", "status": 200}


def test_a_5xx_is_retried_with_the_same_key(lead, executions, webhook):
    webhook.answers = [503, 429]
    run, _ = services.start_delivery(lead.pk, by="alice")
    assert run_due_steps() == ["succeeded", "succeeded", "retry", "retry", "succeeded", "succeeded"]
    assert len({headers["Idempotency-Key"] for headers, _ in webhook.received}) == 1 and len(webhook.received) == 3
    assert DeliveryRun.objects.get().state == "delivered"


def test_a_4xx_dead_letters_the_run_at_the_step_without_showing_the_url(lead, executions, webhook):
    webhook.answers = [404]
    services.start_delivery(lead.pk, by="alice")
    assert run_due_steps() == ["succeeded", "succeeded", "dead"]
    entry = DeadLetter.objects.get()
    assert entry.error_message == ("delivery step 3 of 4 (notify_team) failed: "
                                   "PermanentError: the team webhook refused the notification: HTTP 404")
    assert "sekret" not in entry.error_message + (entry.error_stack or "")


def test_an_unreachable_webhook_is_retried(lead, executions, webhook, settings):
    settings.DELIVERY_NOTIFY_WEBHOOK_URL = "http://127.0.0.1:9/hooks/sekret"  # discard port: refused
    services.start_delivery(lead.pk, by="alice")
    assert run_due_steps() == ["succeeded", "succeeded", "retry", "retry", "dead"]
    assert "cannot be reached: ConnectionRefusedError" in DeadLetter.objects.get().error_message


def test_mock_mode_never_calls_out(lead, executions, webhook, settings):
    settings.MOCK_MODE = True
    services.start_delivery(lead.pk, by="alice")
    assert run_due_steps() == ["succeeded"] * 4
    assert webhook.received == []


def test_a_webhook_url_that_is_not_http_stops_start_up_in_one_line_without_showing_it():
    from tests.test_settings import MANAGE, start

    result = start(MANAGE, DELIVERY_NOTIFY_WEBHOOK_URL="hooks.slack.com/services/T0/B0/sekret")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "configuration error: DELIVERY_NOTIFY_WEBHOOK_URL must be an http:// or https:// URL with a host, "
        "not one starting 'hooks.sl'")
    assert "sekret" not in result.stderr + result.stdout
