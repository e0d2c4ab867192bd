"""The ledger's admin pages: readable by staff, never editable."""
import pytest
from django.contrib.auth.models import User

from workers import ledger
from workers.models import JobFailure

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


@pytest.mark.parametrize("model", ["job", "jobfailure", "workerheartbeat", "queuepause", "queuedailystats"])
def test_lists_open_and_nothing_can_be_added(admin_client, model):
    assert admin_client.get(f"/admin/workers/{model}/").status_code == 200
    assert admin_client.get(f"/admin/workers/{model}/add/").status_code == 403


def test_a_job_page_shows_every_failed_attempt(admin_client):
    job = ledger.enqueue("delivery", "delivery.run", {})
    for attempt, error in ((1, "ConnectionError: smtp down"), (2, "TimeoutError: slow")):
        JobFailure.objects.create(job=job, queue="delivery", attempt=attempt, error=error)
    page = admin_client.get(f"/admin/workers/job/{job.id}/change/").content.decode()
    assert "ConnectionError: smtp down" in page and "TimeoutError: slow" in page
