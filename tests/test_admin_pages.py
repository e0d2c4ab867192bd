"""Every admin page, as a superuser sees it: the models' names read right (titles, breadcrumbs, the
change list's count, the delete action), times carry seconds and their zone as the dashboard's do,
and a ledger job and Celery's result of it link to each other."""
import re
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse
from django_celery_results.models import GroupResult, TaskResult

from access.auth import create_token
from dlq.models import DeadLetter
from dlq.services import record_dead_letter
from leads.models import Lead, LeadSubmission
from workers import ledger
from workers.models import Job, JobFailure, QueueDailyStats, QueuePause, WorkerHeartbeat

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 11, 30, 8, 20, 15, tzinfo=UTC)
SHOWN = "2026-11-30 08:20:15 UTC"  # as the dashboard writes a time
TIME_WITH_ZONE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
PROJECT_APPS = {"workers", "dlq", "leads", "access"}


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def one_of_each() -> dict[type, object]:
    """A row of every model the admin shows, its times set to MOMENT."""
    job = ledger.enqueue("delivery", "delivery.run", {})
    Job.objects.filter(pk=job.pk).update(created_at=MOMENT, next_attempt_at=MOMENT)
    entry = record_dead_letter(queue_name="delivery", job_id=str(job.id), job_data={}, error_message="boom",
                               error_stack="", attempts_made=3)
    DeadLetter.objects.filter(pk=entry.pk).update(failed_at=MOMENT)
    lead = Lead.objects.create(email="jane@acme.io", status="qualified", score=80)
    Lead.objects.filter(pk=lead.pk).update(created_at=MOMENT)
    submission = LeadSubmission.objects.create(payload={"email": "jane@acme.io"}, lead=lead)
    LeadSubmission.objects.filter(pk=submission.pk).update(received_at=MOMENT)
    token, _ = create_token("prometheus")
    type(token).objects.filter(pk=token.pk).update(created_at=MOMENT)
    result = TaskResult.objects.create(task_id=str(job.id), task_name="delivery.run", status="SUCCESS",
                                       worker="delivery@primary.h", meta='{"runtime_seconds": 0.25, "children": []}')
    TaskResult.objects.filter(pk=result.pk).update(date_created=MOMENT, date_started=MOMENT, date_done=MOMENT)
    group = GroupResult.objects.create(group_id="g1")
    GroupResult.objects.filter(pk=group.pk).update(date_created=MOMENT, date_done=MOMENT)
    return {
        Job: job,
        JobFailure: JobFailure.objects.create(job=job, queue="delivery", attempt=1, error="x", failed_at=MOMENT),
        WorkerHeartbeat: WorkerHeartbeat.objects.create(
            name="delivery@primary.h", pool="primary", queue="delivery", host="h", pid=1, started_at=MOMENT,
            beat_at=MOMENT, expires_at=MOMENT),
        QueuePause: QueuePause.objects.create(queue="delivery", reason="outage", paused_at=MOMENT),
        QueueDailyStats: QueueDailyStats.objects.create(queue="delivery", day=MOMENT.date(), succeeded=3),
        DeadLetter: entry,
        Lead: lead,
        LeadSubmission: submission,
        type(token): token,
        TaskResult: result,
        GroupResult: group,
    }


def test_every_model_of_the_ledger_leads_and_dead_letters_names_itself():
    # Django's defaults make "queue daily statss"; a plural that is not set explicitly is a guess.
    for model in admin.site._registry:
        if model._meta.app_label in {"workers", "dlq", "leads"}:
            assert {"verbose_name", "verbose_name_plural"} <= model._meta.original_attrs.keys(), model


def test_the_dead_letter_pages_say_entries_not_queue(admin_client):
    for n in range(4):
        record_dead_letter(queue_name="delivery", job_id=None, job_data={}, error_message=f"e{n}", error_stack="",
                           attempts_made=1)
    changelist = page(admin_client, "/admin/dlq/deadletter/")
    assert "4 dead-letter entries" in changelist
    assert "Delete selected dead-letter entries" in changelist
    assert "Select dead-letter entry to change" in changelist
    assert re.search(r'<a href="/admin/dlq/">Dead-letter queue</a>\s*&rsaquo; Dead-letter entries', changelist)
    assert "4 dead-letter queue" not in changelist and "Delete selected dead-letter queue" not in changelist
    entry = DeadLetter.objects.first()
    change = page(admin_client, f"/admin/dlq/deadletter/{entry.pk}/change/")
    assert re.search(r"&rsaquo; <a href=\"/admin/dlq/deadletter/\">Dead-letter entries</a>", change)
    home = page(admin_client, "/admin/")
    assert "Dead-letter entries" in home and "Queue daily stats" in home


def test_queue_daily_stats_are_not_statss(admin_client):
    QueueDailyStats.objects.create(queue="delivery", day=MOMENT.date(), succeeded=1)
    QueueDailyStats.objects.create(queue="email-sending", day=MOMENT.date(), succeeded=1)
    changelist = page(admin_client, "/admin/workers/queuedailystats/")
    assert "2 queue daily stats" in changelist and "Queue daily stats" in changelist
    assert "statss" not in changelist.lower()


def test_every_change_list_and_change_page_shows_times_with_seconds_and_zone(admin_client):
    rows = one_of_each()
    assert set(rows) >= {m for m in admin.site._registry if m._meta.app_label in PROJECT_APPS}, "a model untested"
    for model, obj in rows.items():
        opts = model._meta
        changelist = page(admin_client, reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        change = page(admin_client, reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        for text in (changelist, change):
            assert "a.m." not in text and "p.m." not in text, model  # Django's default: "Nov. 30, 2026, 8:20 a.m."
            if model is QueueDailyStats:
                assert "2026-11-30" in text
            else:
                assert SHOWN in text, (model, TIME_WITH_ZONE.findall(text))


def test_a_job_and_celerys_result_of_it_link_to_each_other(admin_client):
    rows = one_of_each()
    job, result = rows[Job], rows[TaskResult]
    job_url = reverse("admin:workers_job_change", args=[job.pk])
    result_url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
    job_page = page(admin_client, job_url)
    assert f'<a href="{result_url}">SUCCESS</a> on delivery@primary.h' in job_page
    result_page = page(admin_client, result_url)
    assert f'<a href="{job_url}">{job.pk}</a>' in result_page
    assert "0.250 s" in result_page  # the runtime the task measured
    results_list = page(admin_client, reverse("admin:django_celery_results_taskresult_changelist"))
    assert f'<a href="{job_url}">{job.pk}</a>' in results_list
    other = ledger.enqueue("delivery", "delivery.run", {})
    assert "none stored" in page(admin_client, reverse("admin:workers_job_change", args=[other.pk]))


def test_the_resolve_page_shows_each_entrys_time_with_seconds_and_zone(admin_client):
    entry = one_of_each()[DeadLetter]
    response = admin_client.post("/admin/dlq/deadletter/", {"action": "resolve_selected", "_selected_action": [entry.pk]})
    assert response.status_code == 200
    assert f"{SHOWN} · delivery" in response.content.decode()
