"""Providers' tracking webhooks, signed as each provider signs them, posted to the real view: each
event recorded once however often it is posted again; a hard bounce or a complaint suppresses the
address (and it then receives nothing, counted at the fake provider); a bad signature is refused."""
import json
import uuid

import pytest
from django.test import Client

from emails import services
from emails.events import METADATA_KEY
from emails.models import EmailEvent, Message, Suppression
from tests.emails.helpers import make_lead, run_due_email_jobs
from tests.emails.provider_keys import MAILGUN_SIGNING_KEY, basic_auth, mailgun_post

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"
POSTMARK = "/email/events/postmark/"
MAILGUN = "/email/events/mailgun/"


def sent_outreach(email: str = "jane@acme.io") -> Message:
    services.queue_outreach(make_lead(email).id, SITE)
    run_due_email_jobs()
    return Message.objects.get(to_email=email)


def postmark_bounce(message: Message, kind: str = "HardBounce", event_id: int = 4323372036854775807) -> dict:
    return {"RecordType": "Bounce", "ID": event_id, "Type": kind, "TypeCode": 1, "MessageID": message.provider_message_id,
            "Email": message.to_email, "BouncedAt": "2026-01-02T10:00:00Z", "Description": "The server was unable "
            "to deliver your message (ex: unknown user, mailbox not found).", "Details": "smtp;550 5.1.1 no such user",
            "Metadata": {METADATA_KEY: str(message.id)}, "MessageStream": "outbound"}


def post_postmark(event: dict, **auth) -> object:
    return Client().post(POSTMARK, json.dumps(event), "application/json", **(auth or basic_auth()))


def test_each_postmark_event_is_recorded_once_however_often_it_is_posted(fake_provider):
    message = sent_outreach()
    delivered = {"RecordType": "Delivery", "MessageID": message.provider_message_id, "Recipient": message.to_email,
                 "DeliveredAt": "2026-01-02T10:00:00Z", "Details": "250 2.0.0 OK", "ServerID": 23,
                 "Metadata": {METADATA_KEY: str(message.id)}, "MessageStream": "outbound"}

    answers = [post_postmark(delivered) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["recorded"] for a in answers] == [1, 0, 0]
    [event] = EmailEvent.objects.all()
    assert (event.provider, event.event_type, event.recipient, event.message_id) == (
        "postmark", "delivered", "jane@acme.io", message.id)
    assert not event.suppressed and not Suppression.objects.exists()


def test_a_hard_bounce_suppresses_and_the_address_then_receives_nothing(fake_provider):
    message = sent_outreach()
    for _ in range(3):  # the provider posts it again (it did not see our answer)
        assert post_postmark(postmark_bounce(message)).status_code == 200

    [event] = EmailEvent.objects.all()
    assert (event.event_type, event.reject_reason, event.suppressed, event.event_id) == (
        "bounced", "bounced", True, "4323372036854775807")
    assert Suppression.objects.get(email="jane@acme.io").reason == "bounce"

    later = services.queue_message(key="delivery:1:handover", to="jane@acme.io", template="handover",
                                   context={"first_name": "Jane", "site_url": SITE})
    run_due_email_jobs()
    assert later.status == "skipped"
    assert fake_provider.count_by_recipient() == {"jane@acme.io": 1}  # the outreach only


def test_a_soft_bounce_is_recorded_and_suppresses_no_one(fake_provider):
    message = sent_outreach()
    assert post_postmark(postmark_bounce(message, "SoftBounce", 77)).status_code == 200
    assert EmailEvent.objects.get().suppressed is False and not Suppression.objects.exists()


def test_a_complaint_suppresses(fake_provider):
    message = sent_outreach()
    complaint = {**postmark_bounce(message, "SpamComplaint", 78), "RecordType": "SpamComplaint"}
    assert post_postmark(complaint).status_code == 200
    event = EmailEvent.objects.get()
    assert (event.event_type, event.suppressed) == ("complained", True)
    # A complaint is its own reason now, and it stops all mail.
    assert Suppression.objects.get(email="jane@acme.io").reason == "complaint"


def test_an_event_before_the_provider_id_is_stored_still_finds_its_message(fake_provider):
    """Linked by the metadata we sent; and one with only the provider's id is linked when `sent` commits."""
    services.queue_outreach(make_lead("jane@acme.io").id, SITE)
    message = Message.objects.get()
    early = {"RecordType": "Open", "MessageID": "pm-early", "Recipient": "jane@acme.io", "FirstOpen": True,
             "ReceivedAt": "2026-01-02T10:00:00Z", "Metadata": {}}
    assert post_postmark(early).status_code == 200
    assert EmailEvent.objects.get().message is None
    from emails.events import attach_events

    Message.objects.filter(pk=message.pk).update(provider_message_id="pm-early")
    assert attach_events(message.id, "pm-early") == 1
    assert EmailEvent.objects.get().message_id == message.id


@pytest.mark.parametrize("auth", [{}, basic_auth("postmark-hooks:wrong-password"), basic_auth("other:correct-horse-battery"),
                                  {"HTTP_AUTHORIZATION": "Bearer rsl_" + "x" * 43}])
def test_postmark_posts_without_the_webhook_login_are_refused(fake_provider, auth):
    message = sent_outreach()
    response = Client().post(POSTMARK, json.dumps(postmark_bounce(message)), "application/json", **auth)
    assert response.status_code in (401, 403) and response.json()["success"] is False
    assert not EmailEvent.objects.exists() and not Suppression.objects.exists()


# --- Mailgun: an HMAC over the timestamp and token, with the webhook signing key ---------------------

@pytest.fixture
def mailgun(settings):
    settings.EMAIL_PROVIDER = "mailgun"
    settings.ANYMAIL = {"MAILGUN_API_KEY": "key-test", "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY}


def mailgun_failure(message_id: uuid.UUID | None = None, event_id: str = "evt-permanent-1") -> dict:
    return {"event": "failed", "severity": "permanent", "reason": "bounce", "id": event_id, "timestamp": 1767348000.5,
            "recipient": "bob@acme.io", "message": {"headers": {"message-id": "20260102.1@mg.agency.test"}},
            "user-variables": {METADATA_KEY: str(message_id)} if message_id else {},
            "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"}}


def test_a_signed_mailgun_bounce_is_recorded_once_and_suppresses(mailgun):
    body = mailgun_post(mailgun_failure())
    answers = [Client().post(MAILGUN, body, "application/json") for _ in range(2)]  # the same post again
    answers.append(Client().post(MAILGUN, mailgun_post(mailgun_failure()), "application/json"))  # signed anew

    assert [a.status_code for a in answers] == [200, 200, 200]
    [event] = EmailEvent.objects.all()
    assert (event.event_id, event.event_type, event.recipient, event.suppressed) == (
        "evt-permanent-1@1767348000.5", "bounced", "bob@acme.io", True)
    assert "signature" not in event.payload and MAILGUN_SIGNING_KEY not in json.dumps(event.payload)
    assert Suppression.objects.get(email="bob@acme.io").reason == "bounce"


@pytest.mark.parametrize("tamper", ["wrong key", "event changed after signing", "no signature", "not json"])
def test_a_wrongly_signed_mailgun_post_is_refused_with_json(mailgun, tamper):
    body = {
        "wrong key": lambda: mailgun_post(mailgun_failure(), key="another-key-0123456789"),
        "event changed after signing": lambda: mailgun_post(mailgun_failure()).replace(b"bob@acme.io", b"eve@acme.io"),
        "no signature": lambda: json.dumps({"event-data": mailgun_failure()}).encode(),
        "not json": lambda: b"\xff{",
    }[tamper]()
    response = Client().post(MAILGUN, body, "application/json")
    if tamper == "event changed after signing":
        # Mailgun signs only the timestamp and token, not the event: this is what its scheme cannot
        # see. The event id still keeps it from counting twice.
        assert response.status_code == 200
        return
    assert response.status_code == 403 and "not signed by mailgun" in response.json()["error"]
    assert not EmailEvent.objects.exists() and not Suppression.objects.exists()


def test_a_signed_post_with_characters_postgresql_cannot_store_is_recorded_not_a_500(fake_provider):
    odd = {"RecordType": "Bounce", "ID": 79, "Type": "HardBounce", "Email": "nul\u0000@acme.io" + "x" * 300,
           "Details": "half a pair \ud800", "Metadata": {"k\u0000": "v\u0000"}, "BouncedAt": "2026-01-02T10:00:00Z"}
    response = Client().post(POSTMARK, json.dumps(odd), "application/json", **basic_auth())
    assert response.status_code == 200
    event = EmailEvent.objects.get()
    assert event.suppressed is False and not Suppression.objects.exists()  # not an address: nobody suppressed


def test_a_signed_post_with_numbers_postgresql_json_cannot_hold_is_recorded_not_a_500(fake_provider):
    """NaN and Infinity are JSON to Python, not to PostgreSQL (found by the webhook fuzz)."""
    body = '{"RecordType": "Delivery", "Recipient": "jane@acme.io", "ServerID": NaN, "Extra": [Infinity, -Infinity]}'
    response = Client().post(POSTMARK, body, "application/json", **basic_auth())
    assert response.status_code == 200
    assert EmailEvent.objects.get().payload == {"RecordType": "Delivery", "Recipient": "jane@acme.io",
                                                "ServerID": "nan", "Extra": ["inf", "-inf"]}


def test_a_signed_post_nested_deeper_than_python_parses_is_a_json_400_not_a_500(fake_provider):
    """Found by the webhook fuzz: anymail's json.loads raised RecursionError, answered as a 500."""
    body = '{"RecordType": "Delivery", "x": ' + "[" * 20000 + "]" * 20000 + "}"
    response = Client().post(POSTMARK, body, "application/json", **basic_auth())
    assert response.status_code == 400, response.content
    assert response.json()["success"] is False and "postmark" in response.json()["error"]
    assert not EmailEvent.objects.exists()
