"""A send job cancelled before it started (ledger.cancel_not_started, the admin's "Cancel" action): its
message is not left `pending` for ever (emails marks it through workers.registry.on_cancel)."""
import pytest

from emails import services
from emails.models import Message
from tests.emails.helpers import make_lead
from workers import ledger
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"


def test_a_cancelled_send_skips_its_pending_message_with_the_reason():
    services.queue_outreach(make_lead("jane@acme.io").id, SITE)
    message = Message.objects.get()

    assert ledger.cancel_not_started([str(message.job_id)]) == [str(message.job_id)]

    message.refresh_from_db()
    assert message.status == Message.Status.SKIPPED
    assert message.last_error == services.CANCELLED_UNSENT and "cancelled" in message.last_error
    assert Job.objects.get(pk=message.job_id).state == Job.State.CANCELLED


def test_a_cancelled_retry_of_a_message_an_attempt_left_sending_is_unknown_not_skipped():
    # An earlier attempt set it `sending` and then lost its way (its retry waits): the server may have it.
    services.queue_outreach(make_lead("bob@acme.io").id, SITE)
    message = Message.objects.get()
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING, fence=1)
    Job.objects.filter(pk=message.job_id).update(state=Job.State.RETRY, attempts=1)

    ledger.cancel_not_started([str(message.job_id)])

    message.refresh_from_db()
    assert message.status == Message.Status.UNKNOWN and message.last_error == services.CANCELLED_SENDING


def test_a_running_send_is_not_cancelled_and_its_message_is_left_alone():
    services.queue_outreach(make_lead("ann@acme.io").id, SITE)
    message = Message.objects.get()
    Job.objects.filter(pk=message.job_id).update(state=Job.State.RUNNING)

    assert ledger.cancel_not_started([str(message.job_id)]) == []

    message.refresh_from_db()
    assert message.status == Message.Status.PENDING and message.last_error == ""


def test_a_send_cancelled_after_its_message_was_published_reaches_no_smtp_server(smtp_sink):
    """Counted at the SMTP server: the job's message is already in the broker (dispatched) when the
    cancel comes; the worker that takes it claims nothing and sends nothing, and the next rounds
    publish nothing more. A second, uncancelled send in the same rounds is delivered (the sink listens)."""
    from emails.sending import EmailWork
    from workers.outside import run_outside_job

    services.queue_outreach(make_lead("jane@acme.io").id, SITE)
    services.queue_outreach(make_lead("ok@acme.io").id, SITE)
    cancelled = Message.objects.get(to_email="jane@acme.io")
    dispatched = {d.job_id: d for d in ledger.take_due_jobs("email-sending", 10)}
    assert ledger.cancel_not_started([str(cancelled.job_id)]) == [str(cancelled.job_id)]

    for dispatch in dispatched.values():  # as the worker runs the published messages
        run_outside_job(dispatch.job_id, dispatch.token, worker="test-worker", work=EmailWork())
    assert ledger.take_due_jobs("email-sending", 10) == []

    assert smtp_sink.count_by_recipient() == {"ok@acme.io": 1}
    assert Job.objects.get(pk=cancelled.job_id).state == Job.State.CANCELLED
