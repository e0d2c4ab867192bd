"""The tracking endpoints under valid, tampered and foreign tokens, and the one-click unsubscribe."""
import re
import uuid

import pytest
from django.core import signing

from emails import services, tracking
from emails.suppression import suppress
from emails.models import Message, Suppression
from tests.emails.helpers import make_lead, run_due_email_jobs

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"


@pytest.fixture
def sent(smtp_sink):
    """An outreach message received by the SMTP server; its links as they arrived."""
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    run_due_email_jobs()
    [received] = smtp_sink.to("jane@acme.io")
    html = received.get_body(("html",)).get_content()
    links = {
        "open": re.search(r'src="http://testserver(/email/open/[^"]+)"', html).group(1),
        "click": re.search(r'href="http://testserver(/email/click/[^"]+)"', html).group(1),
        "unsubscribe": received["List-Unsubscribe"].strip()[len("<http://testserver"):-1],
    }
    return Message.objects.get(), links


def test_open_pixel_records_first_time_and_count(client, sent):
    message, links = sent
    first = client.get(links["open"])
    assert first.status_code == 200 and first["Content-Type"] == "image/gif" and first["Cache-Control"] == "no-store"
    client.get(links["open"])
    message.refresh_from_db()
    assert message.open_count == 2 and message.first_opened_at is not None
    opened_at = message.first_opened_at
    client.get(links["open"])
    message.refresh_from_db()
    assert message.first_opened_at == opened_at  # the first time stays


def test_click_redirects_to_the_link_the_message_contained(client, sent):
    message, links = sent
    assert client.head(links["click"])["Location"] == SITE  # a link checker: not a click
    response = client.get(links["click"])
    assert response.status_code == 302 and response["Location"] == SITE
    message.refresh_from_db()
    assert message.click_count == 1 and message.first_clicked_at is not None
    assert message.first_opened_at is not None  # a click is an open, whether images loaded or not


def _tamper(token: str) -> str:
    value, _, signature = token.rpartition(":")
    return f"{value}:{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize("endpoint", ["open", "click", "unsubscribe"])
def test_a_tampered_token_gets_404_and_records_nothing(client, sent, endpoint):
    message, links = sent
    path = links[endpoint]
    prefix, token = path.rsplit("/", 1)
    suffix = ".gif" if token.endswith(".gif") else ""
    token = token.removesuffix(".gif")
    assert client.get(f"{prefix}/{_tamper(token)}{suffix}").status_code == 404
    assert client.post(f"{prefix}/{_tamper(token)}{suffix}").status_code in (404, 405)
    message.refresh_from_db()
    assert (message.open_count, message.click_count, message.unsubscribed_at) == (0, 0, None)
    assert not Suppression.objects.exists()


def test_foreign_tokens_get_404(client, sent, settings):
    message, links = sent
    open_token = links["open"].rsplit("/", 1)[1].removesuffix(".gif")
    click_token = links["click"].rsplit("/", 1)[1]
    # A token of another purpose (the salt differs) ...
    assert client.get(f"/email/click/{open_token}").status_code == 404
    assert client.get(f"/email/open/{click_token}.gif").status_code == 404
    assert client.post(f"/email/unsubscribe/{open_token}").status_code == 404
    # ... signed with another key (another installation) ...
    other = signing.Signer(key="another-installation-key-" + "y" * 32, salt=tracking.CLICK).sign(f"{message.id.hex}.0")
    assert client.get(f"/email/click/{other}").status_code == 404
    # ... or validly signed for a message that does not exist.
    ghost = tracking.make_token(tracking.OPEN, uuid.uuid4())
    assert client.get(f"/email/open/{ghost}.gif").status_code == 404
    message.refresh_from_db()
    assert (message.open_count, message.click_count) == (0, 0)


def test_a_click_never_leads_to_a_link_the_message_did_not_contain(client, sent):
    message, _ = sent
    # Signed by us, but naming a link index the message does not have: no redirect anywhere.
    beyond = tracking.make_token(tracking.CLICK, message.id, 1)
    assert client.get(f"/email/click/{beyond}").status_code == 404
    # The target is never taken from the request.
    token = tracking.make_token(tracking.CLICK, message.id, 0)
    response = client.get(f"/email/click/{token}?next=https://evil.example/&url=https://evil.example/")
    assert response["Location"] == SITE
    # Another message's click token does not open this message's links, and vice versa.
    other = make_lead("bob@acme.io")
    services.queue_outreach(other.id, "https://sites.example.com/sites/bob/")
    bob = Message.objects.get(to_email="bob@acme.io")
    assert client.get(f"/email/click/{tracking.make_token(tracking.CLICK, bob.id, 0)}")["Location"] == \
        "https://sites.example.com/sites/bob/"
    message.refresh_from_db()
    assert message.click_count == 1


def test_unsubscribe_page_then_post_is_idempotent(client, sent):
    message, links = sent
    page = client.get(links["unsubscribe"])
    assert page.status_code == 200 and b'<form method="post"' in page.content
    assert not Suppression.objects.exists()  # a GET (a link scanner) unsubscribes nobody

    for _ in range(2):
        response = client.post(links["unsubscribe"], {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and b"jane@acme.io" in response.content
    suppression = Suppression.objects.get(email="jane@acme.io")
    assert suppression.reason == "unsubscribe" and suppression.message_id == message.id
    message.refresh_from_db()
    assert message.unsubscribed_at is not None


def test_the_unsubscribe_page_says_you_are_unsubscribed_once_you_are(client, sent):
    """After the button (or any other stop of marketing mail to the address), the link's page says it
    is done and offers no button: asking again would look as if the first click had not worked."""
    message, links = sent
    client.post(links["unsubscribe"], {"List-Unsubscribe": "One-Click"})
    again = client.get(links["unsubscribe"])
    assert again.status_code == 200 and b"You are unsubscribed" in again.content
    assert b"jane@acme.io" in again.content and b"<form" not in again.content
    assert again["Cache-Control"] == client.get(links["open"])["Cache-Control"]


def test_the_page_asks_again_once_the_address_may_receive_mail_again(client, sent):
    message, links = sent
    client.post(links["unsubscribe"], {"List-Unsubscribe": "One-Click"})
    Suppression.objects.all().delete()  # a person lifted it in the admin
    assert b'<form method="post"' in client.get(links["unsubscribe"]).content


def test_one_click_post_needs_no_csrf_token(sent):
    """RFC 8058: the provider POSTs `List-Unsubscribe=One-Click` with no cookie and no CSRF token."""
    from django.test import Client
    message, links = sent
    response = Client(enforce_csrf_checks=True).post(
        links["unsubscribe"], "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert Suppression.objects.get(email="jane@acme.io").reason == "unsubscribe"


def test_unsubscribed_address_gets_no_more_marketing_but_transactional(smtp_sink):
    lead = make_lead("jane@acme.io")
    suppress("jane@acme.io", "unsubscribe")
    services.queue_outreach(lead.id, SITE)
    services.queue_message(key="handover:1", to="jane@acme.io", template="handover", context={"site_url": SITE})
    run_due_email_jobs()
    assert Message.objects.get(kind="outreach").status == "skipped"
    assert [m["Subject"] for m in smtp_sink.to("jane@acme.io")] == [f"Your website {SITE} is live"]


def test_unsubscribed_between_queueing_and_sending_is_skipped(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    services.unsubscribe(Message.objects.get().id)
    assert run_due_email_jobs() == ["succeeded"]
    assert Message.objects.get().status == "skipped" and smtp_sink.messages == []
