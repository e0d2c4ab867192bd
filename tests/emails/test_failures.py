"""Send failures told apart, at the wire: a real SMTP server on loopback refuses by pattern, and what
arrives is counted there. Only a refusal about the mailbox suppresses; one about us or the message
fails the send (retried, then dead-lettered with the server's words) and suppresses nobody."""
import smtplib

import pytest

from dlq.models import DeadLetter
from emails import services
from emails.models import Campaign, Message, Suppression
from emails.sending import Bounced, NotSent, Refused, classify
from tests.emails.helpers import make_lead, run_due_email_jobs, run_once
from workers import ledger
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"


def campaign_to(addresses: list[str]) -> Campaign:
    for address in addresses:
        lead = make_lead(address)
        services.queue_outreach(lead.id, SITE)
    Message.objects.filter(kind="outreach").update(status="sent")
    Job.objects.all().delete()
    campaign = Campaign.objects.create(name="News", subject_template="News for {{ company }}",
                                       text_template="Hello {{ first_name }}: {{ site_url }}")
    assert services.launch_campaign(campaign.id).queued == len(addresses)
    return campaign


def test_a_5_1_1_for_one_address_suppresses_that_address_only_and_the_others_arrive_once(smtp_sink):
    addresses = [f"r{i}@acme.io" for i in range(4)]
    smtp_sink.refuse("rcpt", r"^r2@", "550 5.1.1 <r2@acme.io>: Recipient address rejected: User unknown")
    campaign_to(addresses)

    run_due_email_jobs()

    assert smtp_sink.count_by_recipient() == {"r0@acme.io": 1, "r1@acme.io": 1, "r3@acme.io": 1}
    [row] = Suppression.objects.all()
    bounced = Message.objects.get(to_email="r2@acme.io", kind="campaign")
    assert (row.email, row.reason, row.message_id, row.by) == ("r2@acme.io", "bounce", bounced.id, "smtp")
    assert "550 5.1.1" in row.detail and "User unknown" in row.detail
    assert bounced.status == "failed" and bounced.last_failure == "mailbox"
    assert DeadLetter.objects.get().attempts_made == 1  # dead-lettered at once: retrying cannot help


@pytest.mark.parametrize("phase, reply", [
    ("rcpt", "554 5.7.1 <r0@acme.io>: Relay access denied"),
    ("rcpt", "550 5.7.26 Unauthenticated email from agency.test is not accepted due to domain's DMARC policy"),
    ("rcpt", "550 Rejected"),  # a 5xx without an enhanced code: not taken as the mailbox's
    ("data", "554 5.7.1 Message rejected as spam by Content Filtering"),
    ("data", "554 Transaction failed"),
])
def test_a_refusal_about_us_or_the_message_suppresses_nobody_retries_then_dead_letters_with_the_servers_words(
        smtp_sink, phase, reply):
    smtp_sink.refuse(phase, r".*", reply)
    campaign_to(["r0@acme.io", "r1@acme.io"])

    assert sorted(run_due_email_jobs()) == ["dead", "dead", "retry", "retry", "retry", "retry"]

    assert smtp_sink.messages == [] and len(smtp_sink.refused) == 6  # 3 attempts each, all refused
    assert not Suppression.objects.exists()
    for message in Message.objects.filter(kind="campaign"):
        assert message.status == "failed" and message.last_failure == "ours"
    for entry in DeadLetter.objects.all():
        assert entry.attempts_made == 3 and " ".join(reply.split()[:2]) in entry.error_message
        assert reply.split()[-1] in entry.error_message  # the server's own words, for a person to read

    # The relay is fixed; a person requeues the dead letters: each recipient gets its message, once.
    smtp_sink.stop_refusing()
    for job in Job.objects.filter(state="dead"):
        ledger.requeue_dead(str(job.id))
    assert run_due_email_jobs() == ["succeeded", "succeeded"]
    assert smtp_sink.count_by_recipient() == {"r0@acme.io": 1, "r1@acme.io": 1}


def test_a_mailbox_refused_after_data_suppresses_it(smtp_sink):
    """Some servers judge the recipient only once the content came (one recipient per message): the
    enhanced code says whose fault it is, not the step."""
    smtp_sink.refuse("data", r"^full@", "552 5.2.2 Mailbox full")
    campaign_to(["full@acme.io"])
    assert run_once() == ["dead"]
    assert Suppression.objects.get().reason == "bounce" and smtp_sink.messages == []


def _recipients_refused(code: int, text: bytes) -> smtplib.SMTPRecipientsRefused:
    return smtplib.SMTPRecipientsRefused({"x@acme.io": (code, text)})


REFUSALS = [
    (_recipients_refused(550, b"5.1.1 no such user"), Bounced),
    (_recipients_refused(550, b"5.1.10 RESOLVER.ADR.RecipientNotFound"), Bounced),  # Microsoft 365
    (_recipients_refused(550, b"5.2.1 The email account that you tried to reach is disabled."), Bounced),
    (_recipients_refused(554, b"5.7.1 Relay access denied"), Refused),
    (_recipients_refused(550, b"5.7.26 DMARC"), Refused),
    (_recipients_refused(550, b"5.4.1 Recipient address rejected: Access denied"), Refused),
    (_recipients_refused(550, b"No such user here"), Refused),  # no enhanced code: not the mailbox's
    (_recipients_refused(450, b"4.2.1 mailbox busy"), NotSent),
    (_recipients_refused(421, b"4.7.0 try later"), NotSent),
    (smtplib.SMTPDataError(554, b"5.7.1 spam"), Refused),
    (smtplib.SMTPDataError(550, b"5.1.1 unknown"), Bounced),
    (smtplib.SMTPDataError(451, b"4.7.1 greylisted"), NotSent),
    (smtplib.SMTPSenderRefused(550, b"5.1.8 Bad sender's mailbox address syntax", "hello@agency.test"), Refused),
    (smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"), Refused),
    (smtplib.SMTPConnectError(554, b"5.7.1 your IP is on a block list"), Refused),
    (smtplib.SMTPSenderRefused(451, b"4.3.0 try later", "hello@agency.test"), NotSent),
]


def test_classify_tells_whose_fault_a_refusal_is():
    """The whole table at once: the mailbox's (Bounced), ours or the message's (Refused), for now (NotSent)."""
    placed = [(str(exc), type(classify(exc, data_started=False)).__name__) for exc, _ in REFUSALS]
    assert placed == [(str(exc), kind.__name__) for exc, kind in REFUSALS]
