"""Bulk by filter and fix-and-rerun in a real headless Chromium, against a live server, under the admin's
Content-Security-Policy: the ledger's change list filtered to one queue and an error text, "Select all",
"Run now" and "Cancel" through their confirmation pages; the dead-letter list's requeue of a filtered set;
a refused lead corrected on its /correct/ page, requeued, and made a site. Counted from the database."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.utils import timezone

from dlq.admin import DeadLetterAdmin
from dlq.models import DeadLetter, DeadLetterCorrection
from emails import services as email_services
from emails.models import Message
from leads.models import Lead, LeadSubmission
from sites.models import Site
from sites.tasks import generate_site
from tests.browser.conftest import log_in, screenshot
from tests.dlq.test_admin_actions import dead_probe
from tests.dlq.test_corrections import refused_lead
from tests.emails.helpers import make_lead
from tests.leads.test_tasks import run_due_jobs
from workers import ledger
from workers.admin import JobAdmin
from workers.models import Job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SITE = "https://sites.example.com/sites/abc123/"


@pytest.fixture
def csp_refusals(page) -> list[str]:
    """What the console reports as refused (the Content-Security-Policy) or as an error (a script, a static
    file that did not load)."""
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text)
            if msg.type == "error" or "Content Security Policy" in msg.text else None)
    return refused


def waiting_sends(n: int, error: str) -> list[Job]:
    """`n` email-sending jobs waiting on their backoff after a failed attempt whose error was `error`."""
    jobs = []
    for i in range(n):
        email_services.queue_outreach(make_lead(f"{error[:3].lower()}{i}@acme{i}.io").id, SITE)
        job = Job.objects.get(pk=Message.objects.get(to_email=f"{error[:3].lower()}{i}@acme{i}.io").job_id)
        Job.objects.filter(pk=job.pk).update(state=Job.State.RETRY, attempts=1, last_error=error,
                                             next_attempt_at=timezone.now() + timedelta(hours=1))
        jobs.append(job)
    return jobs


def select_all_and_run(page, action: str, total: int, noun: str) -> None:
    """The change list's own controls: the header checkbox, "Select all <total> <noun>", the action, Go."""
    page.check("#action-toggle")
    page.click(f".actions .question a:text('Select all {total} {noun}')")
    assert page.locator(".actions .all").is_visible()
    page.select_option("select[name=action]", action)
    page.click(".actions button[name=index]")


def test_run_now_and_cancel_everything_a_ledger_filter_selects(page, live_server, staff_user, csp_refusals,
                                                                monkeypatch, redis_client):
    monkeypatch.setattr(JobAdmin, "list_per_page", 2)  # three hits on two pages: "Select all" is needed
    hits = waiting_sends(3, "SMTPServerDisconnected: 421 try later")
    other_error = waiting_sends(1, "TimeoutError: connect")
    other_queue = ledger.enqueue("delivery", "x", {})
    Job.objects.filter(pk=other_queue.pk).update(state=Job.State.RETRY, last_error="421 try later",
                                                 next_attempt_at=timezone.now() + timedelta(hours=1))
    hit_ids = [job.pk for job in hits]
    query = "queue__exact=email-sending&state__exact=retry&q=421"
    log_in(page, live_server, "/admin/workers/job/")

    page.goto(f"{live_server.url}/admin/workers/job/?{query}")
    select_all_and_run(page, "run_now_selected", 3, "jobs")
    page.wait_for_selector("body.bulk-confirmation")
    assert "The current filter selects 3 jobs" in page.locator(".bulk-count").inner_text()
    assert Job.objects.filter(pk__in=hit_ids, next_attempt_at__lte=timezone.now()).count() == 0  # not yet
    screenshot(page, "bulk-run-now-confirm.png")
    page.click("body.bulk-confirmation input[type=submit]")
    page.wait_for_url("**/admin/workers/job/?*")
    assert "3 jobs are due now." in page.locator(".messagelist").inner_text()
    assert Job.objects.filter(pk__in=hit_ids, next_attempt_at__lte=timezone.now()).count() == 3
    assert not Job.objects.filter(pk__in=[other_error[0].pk, other_queue.pk],
                                  next_attempt_at__lte=timezone.now()).exists()
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id__in=[str(pk) for pk in hit_ids],
                                   change_message="Run now: its wait was cut short").count() == 3

    page.goto(f"{live_server.url}/admin/workers/job/?{query}")
    select_all_and_run(page, "cancel_selected", 3, "jobs")
    page.wait_for_selector("body.bulk-confirmation")
    assert "The current filter selects 3 jobs" in page.locator(".bulk-count").inner_text()
    page.click("body.bulk-confirmation input[type=submit]")
    page.wait_for_url("**/admin/workers/job/?*")
    assert "Cancelled 3 jobs." in page.locator(".messagelist").inner_text()
    assert Job.objects.filter(pk__in=hit_ids, state=Job.State.CANCELLED).count() == 3
    assert Job.objects.filter(state=Job.State.CANCELLED).count() == 3
    # What a cancel means for the messages (emails, through workers.registry.on_cancel): not sent, and why.
    assert Message.objects.filter(job_id__in=hit_ids, status=Message.Status.SKIPPED,
                                  last_error=email_services.CANCELLED_UNSENT).count() == 3
    assert Message.objects.get(job_id=other_error[0].pk).status == Message.Status.PENDING
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id__in=[str(pk) for pk in hit_ids],
                                   change_message="Cancelled before it started").count() == 3
    assert csp_refusals == [] and page.js_errors == []


def test_requeue_everything_a_dead_letter_filter_selects(page, live_server, staff_user, csp_refusals,
                                                         monkeypatch, redis_client):
    monkeypatch.setattr(DeadLetterAdmin, "list_per_page", 2)
    hits = [dead_probe("site-generation") for _ in range(3)]
    DeadLetter.objects.filter(pk__in=[e.pk for e in hits]).update(error_message="APIStatusError: 529 overloaded")
    other_error = dead_probe("site-generation")
    other_queue = dead_probe("delivery")
    DeadLetter.objects.filter(pk=other_queue.pk).update(error_message="APIStatusError: 529 overloaded")
    log_in(page, live_server, "/admin/dlq/deadletter/")

    page.goto(f"{live_server.url}/admin/dlq/deadletter/?queue_name__exact=site-generation&q=529")
    select_all_and_run(page, "requeue_selected", 3, "dead-letter entries")
    page.wait_for_selector("body.bulk-confirmation")
    assert "The current filter selects 3 dead-letter entries" in page.locator(".bulk-count").inner_text()
    assert set(Job.objects.values_list("state", flat=True)) == {"dead"}
    screenshot(page, "bulk-requeue-confirm.png")
    # "No, take me back" (admin/js/cancel.js, under the CSP) returns to the list and changes nothing ...
    page.click("body.bulk-confirmation a.cancel-link")
    page.wait_for_selector("#changelist")
    assert set(Job.objects.values_list("state", flat=True)) == {"dead"}
    # ... and the filter, asked again, is confirmed.
    page.goto(f"{live_server.url}/admin/dlq/deadletter/?queue_name__exact=site-generation&q=529")
    select_all_and_run(page, "requeue_selected", 3, "dead-letter entries")
    page.wait_for_selector("body.bulk-confirmation")
    page.click("body.bulk-confirmation input[type=submit]")
    page.wait_for_url("**/admin/dlq/deadletter/?*")
    assert "Requeued 3 jobs; their entries are marked resolved." in page.locator(".messagelist").inner_text()
    assert Job.objects.filter(pk__in=[e.job_id for e in hits], state="pending").count() == 3
    assert DeadLetter.objects.filter(pk__in=[e.pk for e in hits], resolved=True).count() == 3
    assert Job.objects.get(pk=other_error.job_id).state == Job.objects.get(pk=other_queue.job_id).state == "dead"
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id__in=[str(e.pk) for e in hits]).count() == 3
    assert csp_refusals == [] and page.js_errors == []


def test_a_refused_lead_corrected_on_its_page_is_requeued_and_becomes_a_site(page, live_server, staff_user,
                                                                             csp_refusals, redis_client):
    entry = refused_lead()
    log_in(page, live_server, f"/admin/dlq/deadletter/{entry.pk}/change/")

    page.click("a.button:text('Correct the input and requeue')")
    page.wait_for_url(f"**/admin/dlq/deadletter/{entry.pk}/correct/")
    assert page.input_value("#id_email") == "jane@acme"
    # Checked by the lead job's own rules: refused, shown on the page, nothing stored or requeued.
    page.fill("#id_email", "still@wrong")
    page.click("input[type=submit][value='Save the correction and requeue']")
    page.wait_for_selector(".errorlist")
    assert "email 'still@wrong' has no valid domain" in page.locator("#content").inner_text()
    assert not DeadLetterCorrection.objects.exists() and Job.objects.get(pk=entry.job_id).state == "dead"
    page.fill("#id_email", "jane@acme.io")
    page.fill("#id_notes", "typo in the domain")
    screenshot(page, "correct-lead.png")
    page.click("input[type=submit][value='Save the correction and requeue']")
    page.wait_for_url(f"**/admin/dlq/deadletter/{entry.pk}/change/")
    assert "requeued its job" in page.locator(".messagelist").inner_text()

    correction = DeadLetterCorrection.objects.get(entry=entry)
    assert correction.original["email"] == "jane@acme" and correction.corrected["email"] == "jane@acme.io"
    submission = LeadSubmission.objects.get(pk=entry.job_data["submission_id"])
    assert submission.status == LeadSubmission.Status.RECEIVED
    assert Job.objects.get(pk=entry.job_id).state == "pending"
    # The pipeline as tests/dlq/test_corrections.py runs it (MOCK_MODE): qualified, then its site.
    assert run_due_jobs() == ["succeeded"]
    lead = Lead.objects.get(email="jane@acme.io")
    assert [generate_site.run(d.job_id, d.token) for d in ledger.take_due_jobs("site-generation", 10)] == ["succeeded"]
    assert Site.objects.get(lead=lead).status == "published"
    assert csp_refusals == [] and page.js_errors == []
