"""A lead-processing job cancelled before it started: its submission is `cancelled`, with the reason, not
`received` for ever (leads marks it through workers.registry.on_cancel)."""
import pytest

from leads.models import LeadSubmission
from leads.services import CANCELLED_ERROR, accept_leads
from workers import ledger
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancelled_lead_job_cancels_its_submission_and_leaves_the_others():
    first, second = accept_leads([{"email": "jane@acme.io"}, {"email": "sam@acme.io"}], source="test")

    assert ledger.cancel_not_started([str(first.job_id)]) == [str(first.job_id)]

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == LeadSubmission.Status.CANCELLED and first.error == CANCELLED_ERROR
    assert first.processed_at is not None
    assert second.status == LeadSubmission.Status.RECEIVED and second.error == ""
    assert Job.objects.get(pk=second.job_id).state == Job.State.PENDING
