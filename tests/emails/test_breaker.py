"""The email breaker: email-sending pauses itself, with the reason, when sends are refused on our side
across recipients or bounces and complaints pass the providers' thresholds; a person lifts it."""
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from emails import breaker, services
from emails.models import BreakerTrip, Campaign, Message
from emails.suppression import suppress
from monitoring.health import health_report
from tests.emails.helpers import make_lead, run_once
from workers import ledger
from workers.dispatcher import dispatch_due_jobs
from workers.duties import DutyRunner
from workers.models import Job, QueuePause
from workers.pausing import pause_queue, resume_queue

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "email-sending"


@pytest.fixture(autouse=True)
def rates_checked_every_time(monkeypatch):
    monkeypatch.setattr(breaker, "RATE_CHECK_SECONDS", 0.0)


def refused(n: int, *, to: str | None = None, minutes_ago: float = 0) -> None:
    Message.objects.bulk_create([Message(
        key=f"k-{uuid.uuid4()}", kind="campaign", to_email=to or f"r{i}-{uuid.uuid4().hex[:6]}@acme.io", subject="s",
        text_body="t", status="pending", last_failure="ours", last_error="Refused: 554 5.7.1 Relay access denied",
        last_failed_at=timezone.now() - timedelta(minutes=minutes_ago)) for i in range(n)])


def sent(n: int) -> list[Message]:
    return Message.objects.bulk_create([Message(
        key=f"k-{uuid.uuid4()}", kind="campaign", to_email=f"s{i}@acme.io", subject="s", text_body="t", status="sent",
        claimed_at=timezone.now(), sent_at=timezone.now()) for i in range(n)])


def test_sends_refused_on_our_side_for_five_recipients_pause_the_queue_with_the_reason():
    refused(3)
    refused(3, to="same@acme.io")  # one recipient refused thrice is one recipient
    refused(5, minutes_ago=11)  # out of the 10-minute window
    assert breaker.enforce_breaker() is None and not QueuePause.objects.exists()

    refused(1)
    assert "email breaker gate" in DutyRunner().run_due()  # the breaker is one of the leader's duties
    assert dispatch_due_jobs().published == 0
    pause = QueuePause.objects.get(queue=QUEUE)
    assert pause.paused_by == breaker.BREAKER_PAUSED_BY
    assert pause.reason.startswith("breaker: sends to 5 recipients were refused on our side in 10 min")
    assert "554 5.7.1 Relay access denied" in pause.reason and "resume_queue email-sending" in pause.reason
    assert BreakerTrip.objects.get().cause == "refused"

    entry = next(q for q in health_report()["workers"] if q["name"] == QUEUE)
    assert entry["status"] == "paused" and entry["pausedReason"] == pause.reason
    assert breaker.enforce_breaker() is None  # stays until a person lifts it


def test_a_person_lifts_it_and_it_counts_afresh_from_then():
    refused(5)
    assert breaker.enforce_breaker() == "paused"
    assert resume_queue(QUEUE)  # a person, in the admin or with manage.py resume_queue
    assert breaker.enforce_breaker() == "resumed" and not QueuePause.objects.exists()
    assert BreakerTrip.objects.get().resumed_at is not None
    assert breaker.enforce_breaker() is None  # the failures that tripped it were seen

    refused(5)  # still broken: it trips again
    assert breaker.enforce_breaker() == "paused" and BreakerTrip.objects.count() == 2


def test_a_persons_pause_is_left_alone():
    pause_queue(QUEUE, "maintenance", paused_by="ops")
    refused(10)
    assert breaker.enforce_breaker() is None
    assert QueuePause.objects.get().paused_by == "ops" and not BreakerTrip.objects.exists()


def test_bounces_at_five_percent_of_recent_sends_pause_it_once_the_sample_is_large_enough(settings):
    settings.EMAIL_BREAKER_MIN_SENDS = 100
    messages = sent(96)
    for message in messages[:4]:
        suppress(f"b-{message.id}@acme.io", "bounce", message_id=message.id, by="smtp")
    assert breaker.enforce_breaker() is None  # 96 sends: below the sample
    sent(4)
    assert breaker.enforce_breaker() is None  # 4 of 100: under 5 %
    for n in range(30):  # imported or entered by hand: not bounces of our sending
        suppress(f"imported{n}@acme.io", "bounce", by="import by root")
    assert breaker.enforce_breaker() is None
    suppress("late@acme.io", "bounce", event_id="evt-9", by="postmark")
    assert breaker.enforce_breaker() == "paused"
    pause = QueuePause.objects.get()
    assert pause.reason.startswith("breaker: 5 bounces in 100 messages (5 %) over 24 h reached 5 %")


def test_complaints_at_a_tenth_of_a_percent_pause_it(settings):
    settings.EMAIL_BREAKER_MIN_SENDS = 500
    sent(1000)
    assert breaker.enforce_breaker() is None
    suppress("angry@acme.io", "complaint", event_id="evt-1", by="postmark")
    assert breaker.enforce_breaker() == "paused"
    assert BreakerTrip.objects.get().cause == "complaints"
    assert "1 complaints in 1000 messages (0.1 %)" in QueuePause.objects.get().reason


def test_a_send_published_before_the_pause_is_held_not_attempted(smtp_sink):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, "https://sites.example.com/s/1/")
    [dispatch] = ledger.take_due_jobs(QUEUE, 10)
    refused(5)
    breaker.enforce_breaker()
    from emails.tasks import send_message
    assert send_message.run(dispatch.job_id, dispatch.token) == "held"
    job = Job.objects.get(pk=dispatch.job_id)
    assert job.state == "pending" and job.attempts == 0 and smtp_sink.messages == []
    assert ledger.take_due_jobs(QUEUE, 10) == []  # paused: nothing more is published


def test_a_relay_refusing_everyone_trips_it_at_the_wire(smtp_sink):
    smtp_sink.refuse("rcpt", ".*", "554 5.7.1 <x>: Relay access denied")
    for i in range(6):
        make_lead(f"r{i}@acme.io")
    campaign = Campaign.objects.create(name="All", audience="qualified", subject_template="Hi",
                                       text_template="Hello")
    services.launch_campaign(campaign.id)
    assert run_once() == ["retry"] * 6
    assert breaker.enforce_breaker() == "paused"
    assert "Relay access denied" in QueuePause.objects.get().reason and smtp_sink.messages == []
