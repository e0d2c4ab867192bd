"""A delivery step's job cancelled before it started: the step and its run fail with the reason, not
`pending`/`running` for ever (delivery marks them through workers.registry.on_cancel)."""
import pytest

from delivery import services
from delivery.models import DeliveryRun, DeliveryStep
from workers import ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancelled_step_job_fails_the_step_and_its_run_and_names_the_step(lead):
    run, _ = services.start_delivery(lead.pk, by="alice")
    first = run.steps.get(position=1)

    assert ledger.cancel_not_started([str(first.job_id)]) == [str(first.job_id)]

    first.refresh_from_db()
    run.refresh_from_db()
    assert first.state == DeliveryStep.State.FAILED and "cancelled" in first.last_error
    assert first.finished_at is not None
    assert run.state == DeliveryRun.State.FAILED and run.current_step == 1
    assert run.error.startswith("delivery step 1 of 4 (publish_site) cancelled: ")
    assert set(run.steps.exclude(position=1).values_list("state", flat=True)) == {DeliveryStep.State.PENDING}
