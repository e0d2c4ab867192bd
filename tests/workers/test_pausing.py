"""Pausing a queue on purpose: its jobs stay in the ledger until it is resumed."""
import pytest
from django.core.management import CommandError, call_command

from workers import ledger
from workers.dispatcher import dispatch_due_jobs
from workers.models import Job, QueuePause

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_paused_queue_is_not_dispatched_until_resumed(redis_client, capsys):
    paused = ledger.enqueue("delivery", "delivery.run", {})
    other = ledger.enqueue("lead-processing", "leads.process_lead", {})
    call_command("pause_queue", "delivery", "--reason", "client asked to hold deliveries", "--by", "ops")
    assert "delivery paused: client asked to hold deliveries" in capsys.readouterr().out
    assert dispatch_due_jobs().by_queue == {"lead-processing": 1}
    assert Job.objects.get(pk=paused.pk).state == Job.State.PENDING
    assert Job.objects.get(pk=other.pk).state == Job.State.DISPATCHED

    call_command("resume_queue", "delivery")
    assert capsys.readouterr().out.strip() == "delivery resumed."
    assert dispatch_due_jobs().by_queue == {"delivery": 1}
    assert not QueuePause.objects.exists()


def test_pausing_twice_keeps_the_first_reason(capsys):
    call_command("pause_queue", "email-sending", "--reason", "SMTP provider migration")
    call_command("pause_queue", "email-sending", "--reason", "something else")
    assert "was already paused" in capsys.readouterr().out
    assert QueuePause.objects.get().reason == "SMTP provider migration"


@pytest.mark.parametrize(("args", "message"), [
    (["pause_queue", "nope", "--reason", "x"], "unknown queue 'nope'"),
    (["pause_queue", "delivery", "--reason", "  "], "a reason is required"),
    (["resume_queue", "nope"], "unknown queue 'nope'"),
])
def test_bad_arguments_get_one_clear_line(args, message):
    with pytest.raises(CommandError, match=message):
        call_command(*args)


def test_resuming_a_queue_that_is_not_paused_says_so(capsys):
    call_command("resume_queue", "delivery")
    assert capsys.readouterr().out.strip() == "delivery was not paused."
