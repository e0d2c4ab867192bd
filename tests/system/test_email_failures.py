"""Send failures with real workers of both pools and a leading dispatcher, against a loopback SMTP
server that refuses by pattern; everything is counted at the server.

A campaign of 40: one address's mailbox does not exist (550 5.1.1), some recipients get a 421 at RCPT or
a greylisting 451 after DATA on their first tries. A third of the way in the relay starts refusing
everyone (554 5.7.1 Relay access denied): the breaker pauses email-sending with that reason within
seconds, nobody is suppressed for it. While paused a person suppresses one more address by hand; then
the relay is fixed and a person lifts the pause (and requeues any dead letter). Then: the 5.1.1 address
and the hand-suppressed one received nothing, every other recipient exactly one message, and only the
5.1.1 address was suppressed by sending.
"""
import time

import pytest

from dlq.models import DeadLetter
from emails import services
from emails.breaker import BREAKER_PAUSED_BY
from emails.models import Campaign, Message, Suppression
from emails.suppression import suppress
from fakes.smtp import SmtpSink
from leads.models import Lead
from monitoring.health import health_report
from tests.system.processes import wait_for
from workers import ledger
from workers.models import Job, QueuePause
from workers.pausing import resume_queue

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
RECIPIENTS = 40
POOLS = ("primary", "backup")
NO_MAILBOX = "r007@acme.io"
BY_HAND = "r039@acme.io"


def test_only_mailbox_refusals_suppress_and_the_breaker_pauses_then_resumes(processes):
    sink = SmtpSink(data_delay=0.05).start()
    sink.refuse("rcpt", rf"^{NO_MAILBOX}$", "550 5.1.1 <r007@acme.io>: Recipient address rejected: User unknown")
    sink.refuse("rcpt", r"^r0[0-9][05]@", "421 4.7.0 Too many connections, try again later", times=1)
    sink.refuse("data", r"^r0[0-9][38]@", "451 4.7.1 Greylisted, please try again later", times=1)
    try:
        processes.configure(
            MOCK_MODE="false", ANTHROPIC_API_KEY="test-not-used", EMAIL_BACKEND="emails.backends.SMTPBackend",
            EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(sink.port), EMAIL_TIMEOUT="10",
            DEFAULT_FROM_EMAIL="Agency <hello@agency.test>", PUBLIC_BASE_URL="http://127.0.0.1:8000",
            EMAIL_SENDING_RATE="20/2s", EMAIL_SENDING_CONCURRENCY="2", LOG_LEVEL="INFO",
            # Retries wait long enough that the breaker, not the attempts running out, stops the refusals.
            RETRY_BASE_SECONDS="4", RETRY_MAX_SECONDS="8")
        Lead.objects.bulk_create([Lead(email=f"r{i:03d}@acme.io", first_name=f"R{i}", company="Acme", score=80,
                                       status=Lead.Status.QUALIFIED) for i in range(RECIPIENTS)])
        campaign = Campaign.objects.create(name="All", audience="qualified", subject_template="Hi {{ first_name }}",
                                           text_template="News for {{ company }}")
        for pool in POOLS:
            processes.worker("email-sending", pool, 2)
            processes.dispatcher(pool)
        for pool in POOLS:
            processes.wait_ready(f"email-sending@{pool}")

        assert services.launch_campaign(campaign.id).queued == RECIPIENTS
        assert wait_for(lambda: len(sink.messages) >= RECIPIENTS // 3, 60, interval=0.05), processes.logs()
        relay = sink.refuse("rcpt", r".*", "554 5.7.1 <hello@agency.test>: Relay access denied")
        refused_from = len(sink.refused)
        broken_at = time.monotonic()

        paused = lambda: QueuePause.objects.filter(queue="email-sending", paused_by=BREAKER_PAUSED_BY).first()  # noqa: E731
        assert wait_for(lambda: paused() is not None, 30, interval=0.05), processes.logs()
        paused_after = time.monotonic() - broken_at
        pause = paused()
        assert "554 5.7.1" in pause.reason and "Relay access denied" in pause.reason
        entry = next(q for q in health_report()["workers"] if q["name"] == "email-sending")
        assert entry["status"] == "paused" and entry["pausedReason"] == pause.reason
        # Paused: nothing more reaches the server, accepted or refused.
        time.sleep(3)
        settled = len(sink.refused) + len(sink.messages)
        time.sleep(3)
        assert len(sink.refused) + len(sink.messages) == settled
        refused_by_relay = len([r for r in sink.refused[refused_from:] if r[2].startswith("554")])
        assert not Suppression.objects.exclude(email=NO_MAILBOX).exists()

        suppress(BY_HAND, "manual", detail="asked by phone", by="root")  # a person, while it waits
        sink.stop_refusing(relay)  # the relay is fixed ...
        assert resume_queue("email-sending")  # ... and a person lifts the pause
        for job in Job.objects.filter(queue="email-sending", state="dead"):  # and requeues what ran out
            if not Message.objects.filter(pk=job.payload["message_id"], to_email=NO_MAILBOX).exists():
                ledger.requeue_dead(str(job.id))

        done = lambda: not Message.objects.filter(campaign=campaign, status__in=["pending", "sending"]).exists()  # noqa: E731
        assert wait_for(done, 120, interval=0.1), processes.logs()
        time.sleep(1.5)  # a late duplicate would arrive by now
        assert not QueuePause.objects.exists()
    finally:
        processes.stop_all()
        sink.stop()

    counts = sink.count_by_recipient()
    expected = {f"r{i:03d}@acme.io" for i in range(RECIPIENTS)} - {NO_MAILBOX, BY_HAND}
    assert NO_MAILBOX not in counts and BY_HAND not in counts
    assert set(counts) == expected and set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert set(Suppression.objects.values_list("email", "reason")) == {(NO_MAILBOX, "bounce"), (BY_HAND, "manual")}
    statuses = dict(Message.objects.filter(campaign=campaign).values_list("to_email", "status"))
    assert statuses[NO_MAILBOX] == "failed" and statuses[BY_HAND] == "skipped"
    temporary = len([r for r in sink.refused if r[2][0] == "4"])
    print(f"\nMEASURED breaker: paused {paused_after:.2f} s after the relay began refusing; "
          f"{refused_by_relay} sends refused by the relay (5 trip it), {temporary} 421/451 refusals retried; "
          f"dead letters requeued {DeadLetter.objects.filter(resolved=True).count()}; "
          f"received {len(sink.messages)} messages for {len(counts)} recipients")
