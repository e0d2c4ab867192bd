"""A campaign sent by real workers of both pools through django-anymail's real Postmark backend to a
fake Postmark API on loopback, with one pool's worker SIGKILLed mid-campaign, the provider throttling
now and then and answering one accepted message too late; then the provider's signed events posted
to the real view, each twice.

Counted at the fake, never in our records: exactly one message reached the provider per recipient,
each `sent` message carries the id the provider gave it; each event is recorded once; the bounced
and complaining addresses are suppressed and receive nothing more.
"""
import json
import signal

import pytest
from django.test import Client

from emails import services
from emails.events import METADATA_KEY
from emails.models import EmailEvent, Message, Suppression
from fakes.email_provider import POSTMARK_TOKEN, FakeProvider
from tests.emails.provider_keys import WEBHOOK_LOGIN, basic_auth
from tests.system.processes import wait_for
from tests.system.test_email_campaign import launched_with_both_pools

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
RECIPIENTS = 40


def test_campaign_through_a_provider_api_with_a_worker_killed_then_its_events(processes, settings):
    fake = FakeProvider().start()
    fake.script.extend([(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})] * 3)
    fake.hang_after_accept, fake.hang_seconds = 1, 4.0  # accepted, answered after the 2 s timeout
    try:
        processes.configure(
            MOCK_MODE="false", ANTHROPIC_API_KEY="test-not-used", EMAIL_PROVIDER="postmark",
            ANYMAIL_POSTMARK_SERVER_TOKEN=POSTMARK_TOKEN, ANYMAIL_POSTMARK_API_URL=fake.url,
            ANYMAIL_REQUESTS_TIMEOUT="2", ANYMAIL_WEBHOOK_SECRET=WEBHOOK_LOGIN,
            DEFAULT_FROM_EMAIL="Agency <hello@agency.test>", PUBLIC_BASE_URL="http://127.0.0.1:8000",
            EMAIL_SENDING_CONCURRENCY="4", LOG_LEVEL="INFO")
        campaign = launched_with_both_pools(processes, RECIPIENTS)
        killed = False

        def poll() -> bool:
            nonlocal killed
            if not killed and len(fake.accepted) >= RECIPIENTS // 3:
                processes.kill("email-sending@primary", signal.SIGKILL)
                killed = True
            return not Message.objects.filter(campaign=campaign, status__in=["pending", "sending"]).exists()

        assert wait_for(poll, 180, interval=0.1), processes.logs()
        assert killed
        counts = fake.count_by_recipient()
        assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
        unknown = list(Message.objects.filter(campaign=campaign, status="unknown"))
        assert unknown  # at least the one answered too late
        accepted_ids = {item.metadata.get(METADATA_KEY) for item in fake.accepted}
        for message in unknown:  # a person's decision, from the provider's activity log
            if str(message.id) in accepted_ids:
                assert services.mark_unknown_sent(message.id)
            else:
                assert services.resend_unknown(message.id)
        assert wait_for(lambda: not Message.objects.filter(campaign=campaign).exclude(status="sent").exists(), 120,
                        interval=0.1), processes.logs()
    finally:
        processes.stop_all()
        fake.stop()

    counts = fake.count_by_recipient()
    assert len(counts) == RECIPIENTS and set(counts.values()) == {1}, "not exactly one message per recipient"
    by_message = {item.metadata[METADATA_KEY]: item.provider_message_id for item in fake.accepted}
    for message in Message.objects.filter(campaign=campaign, provider_message_id__gt=""):
        assert message.provider_message_id == by_message[str(message.id)]
    assert Message.objects.filter(campaign=campaign, provider_message_id__gt="").count() >= RECIPIENTS - len(unknown)

    # The provider's events, each posted twice (it did not see our first answer).
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN, "WEBHOOK_SECRET": [WEBHOOK_LOGIN]}
    bounced, complained = fake.accepted[0], fake.accepted[1]
    events = [{"RecordType": "Delivery", "MessageID": item.provider_message_id, "Recipient": item.address,
               "DeliveredAt": "2026-01-02T10:00:00Z", "Metadata": item.metadata} for item in fake.accepted[2:]]
    events.append({"RecordType": "Bounce", "ID": 901, "Type": "HardBounce", "MessageID": bounced.provider_message_id,
                   "Email": bounced.address, "BouncedAt": "2026-01-02T10:00:00Z", "Metadata": bounced.metadata})
    events.append({"RecordType": "SpamComplaint", "ID": 902, "Type": "SpamComplaint", "Email": complained.address,
                   "MessageID": complained.provider_message_id, "BouncedAt": "2026-01-02T10:00:00Z",
                   "Metadata": complained.metadata})
    client = Client()
    for _ in range(2):
        for event in events:
            assert client.post("/email/events/postmark/", json.dumps(event), "application/json",
                               **basic_auth()).status_code == 200
    assert EmailEvent.objects.count() == RECIPIENTS
    assert EmailEvent.objects.filter(message__isnull=True).count() == 0
    assert set(Suppression.objects.filter(reason__in=["bounce", "complaint"]).values_list("email", flat=True)) == {
        bounced.address, complained.address}
    for address in (bounced.address, complained.address):
        assert services.queue_message(key=f"later:{address}", to=address, template="handover",
                                      context={"first_name": "X", "site_url": "https://x.example/"}).status == "skipped"
