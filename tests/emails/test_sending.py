"""Sending through a real SMTP server on loopback: headers, links, exactly one send, failures."""
import os
import re
import stat

import pytest
from django.db import transaction

from emails import services
from emails.models import Message, Suppression
from tests.emails.helpers import make_lead, run_due_email_jobs, run_once
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"


def test_outreach_arrives_once_with_its_headers_links_and_unsubscribe(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    services.queue_outreach(lead.id, SITE)  # the site step ran again: still one message

    assert run_due_email_jobs() == ["succeeded"]

    [received] = smtp_sink.to("jane@acme.io")
    message = Message.objects.get()
    assert message.status == "sent" and message.sent_at is not None
    assert received["Message-ID"] == f"<msg-{message.id}@agency.test>"
    unsubscribe = re.fullmatch(r"<(http://testserver/email/unsubscribe/[^>]+)>", received["List-Unsubscribe"].strip())  # folded: long
    assert unsubscribe
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert SITE not in text and SITE not in html  # the site link is tracked ...
    assert message.links == [SITE]  # ... and stored, as the only place a click may lead
    assert "http://testserver/email/click/" in text and "http://testserver/email/click/" in html
    assert unsubscribe.group(1) in text and unsubscribe.group(1) in html
    assert re.search(r'<img src="http://testserver/email/open/[^"]+\.gif"', html)
    assert received["Subject"] == "Jane, we built a website for Acme"


def test_transactional_message_once_per_key_without_unsubscribe(smtp_sink):
    first = services.queue_message(key="delivery:7:handover", to="bob@acme.io", template="handover",
                                   context={"first_name": "Bob", "site_url": SITE})
    again = services.queue_message(key="delivery:7:handover", to="bob@acme.io", template="handover",
                                   context={"first_name": "Bob", "site_url": SITE})
    assert again.id == first.id
    run_due_email_jobs()
    [received] = smtp_sink.to("bob@acme.io")
    assert received["List-Unsubscribe"] is None and "unsubscribe" not in received.as_string().lower()
    assert Message.objects.get().status == "sent"


@pytest.mark.parametrize("reply, where", [("421 4.3.2 try again later", "rcpt"), ("451 4.7.1 greylisted", "data")])
def test_a_4xx_puts_the_message_back_and_the_job_retries_then_sends_once(smtp_sink, reply, where):
    lead = make_lead("grey@acme.io")
    services.queue_outreach(lead.id, SITE)
    (smtp_sink.rcpt_replies if where == "rcpt" else smtp_sink.data_replies)["grey@acme.io"] = reply

    assert run_once() == ["retry"]
    message = Message.objects.get()
    assert message.status == "pending" and reply.split()[0] in message.last_error
    assert Job.objects.get().state == "retry"
    assert smtp_sink.to("grey@acme.io") == []

    smtp_sink.rcpt_replies.clear()
    smtp_sink.data_replies.clear()
    assert run_due_email_jobs() == ["succeeded"]
    assert len(smtp_sink.to("grey@acme.io")) == 1
    assert Message.objects.get().status == "sent" and Message.objects.get().send_attempts == 2


def test_connection_refused_is_temporary(smtp_sink, settings):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    from tests.system.processes import free_port
    settings.EMAIL_PORT = free_port()  # nothing listens there
    assert run_once() == ["retry"]
    assert Message.objects.get().status == "pending"


def test_a_5xx_mailbox_dead_letters_at_once_and_marks_the_address_bounced(smtp_sink):
    lead = make_lead("nobody@acme.io")
    services.queue_outreach(lead.id, SITE)
    smtp_sink.rcpt_replies["nobody@acme.io"] = "550 5.1.1 no such mailbox"

    assert run_once() == ["dead"]
    assert Message.objects.get().status == "failed"
    assert Suppression.objects.get(email="nobody@acme.io").reason == "bounce"
    from dlq.models import DeadLetter
    assert DeadLetter.objects.get().queue_name == "email-sending"
    # Nothing goes to a bounced address again, transactional or not.
    skipped = services.queue_message(key="k", to="nobody@acme.io", template="handover", context={})
    assert skipped.status == "skipped" and Job.objects.count() == 1


def test_a_message_found_sending_becomes_unknown_and_is_not_sent_again(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    # An earlier attempt claimed it (committed `sending`, fence 1) and died before recording.
    Message.objects.update(status="sending", fence=1)

    assert run_once() == ["succeeded"]  # the job completes ...
    message = Message.objects.get()
    assert message.status == "unknown"  # ... and a person decides
    assert smtp_sink.messages == []

    # A redelivered message of the finished job changes nothing.
    assert run_once() == []
    assert smtp_sink.messages == []


def test_lost_after_data_leaves_it_sending_and_the_retry_makes_it_unknown(smtp_sink):
    """The server takes the message but answers after the client gave up: the client cannot know."""
    lead = make_lead("slow@acme.io")
    services.queue_outreach(lead.id, SITE)
    smtp_sink.data_delay = 2.0  # EMAIL_TIMEOUT is 1 s

    assert run_once() == ["retry"]
    assert Message.objects.get().status == "sending"
    assert run_due_email_jobs() == ["succeeded"]
    assert Message.objects.get().status == "unknown"
    assert len(smtp_sink.to("slow@acme.io")) == 1  # received once, never twice


def test_unknown_resolved_by_a_person(smtp_sink):
    a, b = make_lead("a@acme.io"), make_lead("b@acme.io")
    services.queue_outreach(a.id, SITE)
    services.queue_outreach(b.id, SITE)
    Message.objects.update(status="unknown")
    ma, mb = Message.objects.get(to_email="a@acme.io"), Message.objects.get(to_email="b@acme.io")

    assert services.mark_unknown_sent(ma.id)
    assert services.resend_unknown(mb.id)
    assert not services.resend_unknown(mb.id)  # no longer unknown: nothing more
    Job.objects.filter(payload__message_id=str(ma.id)).delete()
    Job.objects.filter(payload__message_id=str(mb.id), idempotency_key=f"email:{mb.id}").delete()
    run_due_email_jobs()
    assert smtp_sink.to("a@acme.io") == []
    [again] = smtp_sink.to("b@acme.io")
    assert again["Message-ID"] == f"<msg-{mb.id}@agency.test>"  # the same Message-ID
    assert Message.objects.get(pk=ma.pk).status == "sent" and Message.objects.get(pk=mb.pk).status == "sent"


def test_a_late_attempt_cannot_record_over_a_newer_one(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    from emails.sending import EmailWork
    from workers import ledger
    from workers.outside import Attempt
    [d] = ledger.take_due_jobs("email-sending", 1)
    ledger.claim(d.job_id, d.token, "w")
    work = EmailWork()
    attempt = Attempt(d.job_id, "email-sending", {"message_id": str(Message.objects.get().id)}, d.token, 1, "k")
    with transaction.atomic():
        prepared = work.prepare(attempt)
    stale = Attempt(attempt.job_id, attempt.queue, attempt.payload, attempt.fence - 1, 1, "k")
    work.failed(stale, prepared, ConnectionError("x"))
    work.record(stale, prepared, "sent")
    assert Message.objects.get().status == "sending"  # the old fence moved nothing


def test_mock_mode_writes_an_eml_file_a_person_can_open(settings, tmp_path):
    settings.EMAIL_BACKEND = "emails.backends.FileBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    run_due_email_jobs()
    [eml] = list(tmp_path.glob("*.eml"))
    import email
    parsed = email.message_from_bytes(eml.read_bytes())
    assert parsed["To"] == "Jane Doe <jane@acme.io>" and parsed["Message-ID"].startswith("<msg-")
    assert Message.objects.get().status == "sent"


def test_the_mail_sink_is_readable_by_its_owner_only_whatever_the_umask(settings, tmp_path):
    # A lead's address and tracking links: 0600 in a 0700 directory even under a umask of 022.
    settings.EMAIL_BACKEND = "emails.backends.FileBackend"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"
    old_umask = os.umask(0o022)
    try:
        services.queue_outreach(make_lead("jane@acme.io").id, SITE)
        run_due_email_jobs()
    finally:
        os.umask(old_umask)
    [eml] = list((tmp_path / "mail").glob("*.eml"))
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700



def test_a_4xx_on_every_attempt_dead_letters_then_a_requeue_sends_it(smtp_sink):
    lead = make_lead("grey@acme.io")
    services.queue_outreach(lead.id, SITE)
    smtp_sink.data_replies["grey@acme.io"] = "451 4.7.1 greylisted"
    assert run_due_email_jobs() == ["retry", "retry", "dead"]
    assert Message.objects.get().status == "failed"
    assert not Suppression.objects.exists()  # temporary refusals bounce nobody

    smtp_sink.data_replies.clear()
    from workers import ledger
    ledger.requeue_dead(str(Job.objects.get().id))
    assert Message.objects.get().status == "pending"
    assert run_due_email_jobs() == ["succeeded"]
    assert len(smtp_sink.to("grey@acme.io")) == 1


def test_a_worker_lost_on_the_last_attempt_while_sending_leaves_it_unknown(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)
    from workers import ledger
    [d] = ledger.take_due_jobs("email-sending", 1)
    ledger.claim(d.job_id, d.token, "w")
    Job.objects.update(max_attempts=1, lease_expires_at="2000-01-01T00:00Z")
    Message.objects.update(status="sending", fence=d.token)  # claimed, then the worker died
    assert ledger.reap_expired_leases() == 1
    assert Job.objects.get().state == "dead" and Message.objects.get().status == "unknown"


def test_provider_errors_through_anymail_are_placed_by_what_the_provider_said():
    """django-anymail's errors, by their documented shape (its package is not installed here)."""
    from emails.sending import Bounced, NotSent, classify

    class AnymailRecipientsRefused(Exception):
        pass

    class AnymailRequestsAPIError(Exception):
        def __init__(self, status_code):
            super().__init__(f"status {status_code}")
            self.status_code = status_code

    assert isinstance(classify(AnymailRecipientsRefused("all refused"), data_started=True), Bounced)
    assert isinstance(classify(AnymailRequestsAPIError(429), data_started=True), NotSent)
    timed_out = AnymailRequestsAPIError(None)  # no answer: it may have been accepted
    assert classify(timed_out, data_started=True) is timed_out
