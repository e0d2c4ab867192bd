"""The ledger's admin pages: readable by staff, never editable; only a finished job may be deleted."""
import logging

import pytest
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import User
from django.utils import timezone

from dlq.models import DeadLetter
from workers import ledger
from workers.models import Job, JobFailure

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


UNFINISHED = [Job.State.PENDING, Job.State.RETRY, Job.State.DISPATCHED, Job.State.RUNNING]


def _job(state: str) -> Job:
    job = ledger.enqueue("delivery", "delivery.run", {})
    Job.objects.filter(pk=job.pk).update(state=state, finished_at=timezone.now() if state in Job.FINISHED_STATES
                                         else None)
    return Job.objects.get(pk=job.pk)


@pytest.mark.parametrize("state", UNFINISHED)
def test_an_unfinished_job_cannot_be_deleted_on_its_own_page(admin_client, state):
    job = _job(state)
    assert admin_client.get(f"/admin/workers/job/{job.id}/delete/").status_code == 403
    assert admin_client.post(f"/admin/workers/job/{job.id}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_bulk_delete_action_refuses_unfinished_jobs(admin_client):
    jobs = [_job(state) for state in UNFINISHED] + [_job(Job.State.SUCCEEDED)]
    response = admin_client.post("/admin/workers/job/", {"action": "delete_selected", "post": "yes",
                                                         "_selected_action": [str(j.pk) for j in jobs]})
    assert response.status_code == 403
    assert Job.objects.filter(pk__in=[j.pk for j in jobs]).count() == len(jobs)


@pytest.mark.parametrize("state", list(Job.FINISHED_STATES))
def test_a_finished_job_may_be_deleted_and_the_deletion_is_logged(admin_client, caplog, state):
    job = _job(state)
    with caplog.at_level(logging.INFO, logger="workers.admin"):
        response = admin_client.post(f"/admin/workers/job/{job.id}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Job.objects.filter(pk=job.pk).exists()
    assert f"job {job.id} ({state}) deleted from the ledger by root" in caplog.text
    assert LogEntry.objects.filter(object_id=str(job.id), action_flag=DELETION).exists()


def test_finished_jobs_go_through_the_bulk_action_logged(admin_client, caplog):
    jobs = [_job(Job.State.SUCCEEDED), _job(Job.State.DEAD)]
    with caplog.at_level(logging.INFO, logger="workers.admin"):
        response = admin_client.post("/admin/workers/job/", {"action": "delete_selected", "post": "yes",
                                                             "_selected_action": [str(j.pk) for j in jobs]})
    assert response.status_code == 302 and not Job.objects.filter(pk__in=[j.pk for j in jobs]).exists()
    assert all(f"job {j.id}" in caplog.text for j in jobs)


def test_a_dead_job_with_an_unresolved_dead_letter_entry_stays(admin_client):
    job = _job(Job.State.DEAD)
    DeadLetter.objects.create(queue_name="delivery", job_id=str(job.id), job_data={}, error_message="boom")
    assert admin_client.post(f"/admin/workers/job/{job.id}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


def test_a_job_requeued_after_it_was_chosen_is_not_deleted(rf, caplog):
    job = _job(Job.State.DEAD)
    chosen = Job.objects.filter(pk=job.pk)
    Job.objects.filter(pk=job.pk).update(state=Job.State.PENDING, finished_at=None)  # requeued meanwhile
    request = rf.post("/admin/workers/job/")
    request.user = User.objects.create_superuser("ops", password="x")
    with caplog.at_level(logging.WARNING, logger="workers.admin"):
        admin.site._registry[Job].delete_queryset(request, chosen)
    assert Job.objects.filter(pk=job.pk).exists() and "1 job(s) not deleted by ops" in caplog.text
