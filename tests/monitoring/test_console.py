"""The operator's search (/admin/workers/search/) and a job's story (/admin/workers/job/<id>/story/),
through Django's test client against real PostgreSQL: a lead run through the real lead-processing and
site-generation tasks (MOCK_MODE) and the real runner, its outreach email's job dead-lettered."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead, LeadSubmission
from leads.services import accept_leads
from leads.tasks import process_lead
from monitoring import search as searching
from sites.models import Site
from sites.services import SITE_QUEUE
from sites.tasks import generate_site
from workers import ledger
from workers.errors import PermanentError
from workers.models import Job, JobFailure
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_IN_ERROR = "sk-ant-api03-" + "q" * 40


def jane_through_the_pipeline() -> Lead:
    accept_leads([{"email": "Jane@Acme.io", "first_name": "Jane", "last_name": "Doe", "title": "CEO",
                   "company": "Acme Robotics", "website": "https://www.acme.io"}], source="test")
    assert [process_lead.run(d.job_id, d.token) for d in ledger.take_due_jobs("lead-processing", 10)] == ["succeeded"]
    assert [generate_site.run(d.job_id, d.token) for d in ledger.take_due_jobs(SITE_QUEUE, 10)] == ["succeeded"]

    def refused(job: Job) -> None:
        raise PermanentError(f"SMTP said 550: relay denied (key {SECRET_IN_ERROR})")
    assert [run_job(d.job_id, d.token, worker="email-sending@primary.test", handler=refused)
            for d in ledger.take_due_jobs("email-sending", 10)] == ["dead"]
    return Lead.objects.get(email="jane@acme.io")


def staff(*codenames: str) -> Client:
    user = User.objects.create_user("operator", password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


ALL_VIEWS = ("view_lead", "view_leadsubmission", "view_job", "view_deadletter", "view_site", "view_message",
             "view_deliveryrun", "view_taskresult")


def test_the_search_from_an_email_finds_the_leads_whole_story():
    jane = jane_through_the_pipeline()
    site, message = Site.objects.get(lead=jane), Message.objects.get(lead=jane)
    submission = LeadSubmission.objects.get(lead=jane)
    entry = DeadLetter.objects.get(job_id=str(message.job_id))
    jobs = list(Job.objects.all())
    assert len(jobs) == 3

    page = staff(*ALL_VIEWS).get("/admin/workers/search/", {"q": " JANE@acme.IO "})
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/admin/leads/lead/{jane.pk}/change/" in html
    assert f"/admin/leads/leadsubmission/{submission.pk}/change/" in html
    assert f"/admin/sites/site/{site.pk}/change/" in html and site.public_id in html
    assert f"/admin/emails/message/{message.pk}/change/" in html
    assert f"/admin/dlq/deadletter/{entry.pk}/change/" in html
    for job in jobs:  # lead-processing, site-generation, email-sending: each with its story
        assert f"/admin/workers/job/{job.pk}/story/" in html, job


@pytest.mark.parametrize("query, kind", [
    ("acme.io", "leads"), ("https://www.Acme.io/about", "leads"), ("acme robotics", "leads"),
    ("ACME ROBOTICS", "leads"), ("jane@acme.io", "messages"),
])
def test_a_lead_is_found_by_its_domain_and_company_whatever_the_case(query, kind):
    jane = jane_through_the_pipeline()
    results = searching.search(query, User.objects.create_superuser("root", password="x"))
    assert [lead.pk for lead in results.leads] == [jane.pk]
    assert [site.lead_id for site in results.sites] == [jane.pk]


def test_a_site_is_found_by_its_public_id_whatever_the_case():
    jane = jane_through_the_pipeline()
    site = Site.objects.get()
    results = searching.search(site.public_id.upper(), User.objects.create_superuser("root", password="x"))
    assert [s.pk for s in results.sites] == [site.pk] and site.lead_id == jane.pk
    assert [j.pk for j in results.jobs] == [site.job_id]


def test_ids_find_their_rows():
    jane = jane_through_the_pipeline()
    root = User.objects.create_superuser("root", password="x")
    message, site = Message.objects.get(), Site.objects.get()
    entry = DeadLetter.objects.get()
    assert [m.pk for m in searching.search(message.message_id_header, root).messages] == [message.pk]
    assert [m.pk for m in searching.search(str(message.pk), root).messages] == [message.pk]
    by_job = searching.search(str(site.job_id), root)
    assert [s.pk for s in by_job.sites] == [site.pk] and [j.pk for j in by_job.jobs] == [site.job_id]
    by_entry = searching.search(str(entry.pk), root)
    assert [d.pk for d in by_entry.dead_letters] == [entry.pk]
    assert [lead.pk for lead in searching.search(str(jane.pk), root).leads] == [jane.pk]
    assert searching.search("nobody@nowhere.example", root).count == 0


def test_a_refused_lead_is_found_by_the_address_it_came_with():
    accept_leads([{"email": "Typo@Acme.io", "company": "Acme"}], source="test")
    submission = LeadSubmission.objects.get()
    results = searching.search("typo@acme.io", User.objects.create_superuser("root", password="x"))
    assert [s.pk for s in results.submissions] == [submission.pk]
    assert [j.pk for j in results.jobs] == [submission.job_id]


def test_a_staff_user_without_view_lead_sees_no_lead_through_it():
    jane = jane_through_the_pipeline()
    client = staff("view_job", "view_deadletter")
    html = client.get("/admin/workers/search/", {"q": "jane@acme.io"}).content.decode()
    assert f"/admin/leads/lead/{jane.pk}/" not in html and "/story/" not in html  # not a lead, nor its jobs
    assert re.search(r"0 found", html)
    assert "Not searched (your user may not view them): leads, submissions, sites, messages, steps" in html
    results = searching.search("jane@acme.io", User.objects.get(username="operator"))
    assert results.count == 0 and jane.pk
    # And with view_lead only the lead: its site and messages stay hidden without their permissions.
    only_leads = staff_user("view_lead")
    results = searching.search("jane@acme.io", only_leads)
    assert [lead.pk for lead in results.leads] == [jane.pk]
    assert results.sites == results.messages == results.jobs == results.dead_letters == []


def staff_user(*codenames: str) -> User:
    user = User.objects.create_user("viewer-" + "-".join(codenames), password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


def test_a_staff_user_who_may_view_nothing_searched_is_refused():
    response = staff("view_campaign").get("/admin/workers/search/", {"q": "jane@acme.io"})
    assert response.status_code == 403 and b"lacks the permission" in response.content


def test_the_story_shows_every_attempt_the_result_the_dead_letter_and_what_it_made():
    jane_through_the_pipeline()
    message = Message.objects.get()
    email_job = Job.objects.get(pk=message.job_id)
    client = staff(*ALL_VIEWS)
    html = client.get(f"/admin/workers/job/{email_job.pk}/story/").content.decode()
    failure = JobFailure.objects.get(job=email_job)
    entry = DeadLetter.objects.get()
    assert "email-sending@primary.test" in html and "relay denied" in html
    assert SECRET_IN_ERROR not in html  # redacted, in the attempt and in the dead-letter entry
    assert f"/admin/dlq/deadletter/{entry.pk}/change/" in html
    assert f"/admin/emails/message/{message.pk}/change/" in html
    assert f"/admin/leads/lead/{message.lead_id}/change/" in html
    assert failure.attempt == 1 and "failed" in html

    site = Site.objects.get()
    html = client.get(f"/admin/workers/job/{site.job_id}/story/").content.decode()
    assert f"/admin/sites/site/{site.pk}/change/" in html and "succeeded" in html and "made by this job" in html
    lead_job = Job.objects.get(queue="lead-processing")
    html = client.get(f"/admin/workers/job/{lead_job.pk}/story/").content.decode()
    assert f"/admin/leads/leadsubmission/{LeadSubmission.objects.get().pk}/change/" in html


def test_the_story_hides_each_part_without_its_permission_and_needs_view_job():
    jane_through_the_pipeline()
    message = Message.objects.get()
    html = staff("view_job").get(f"/admin/workers/job/{message.job_id}/story/").content.decode()
    assert "/admin/emails/message/" not in html and "/admin/dlq/deadletter/" not in html
    assert "/admin/leads/lead/" not in html and "relay denied (key" in html  # the ledger's own attempt error
    assert "Hidden: your user may not view dead-letter entries" in html
    response = staff_client("view_lead").get(f"/admin/workers/job/{message.job_id}/story/")
    assert response.status_code == 403 and b"workers.view_job" in response.content
    assert staff_client("view_job", name="other").get(
        "/admin/workers/job/00000000-0000-0000-0000-000000000000/story/").status_code == 404


def staff_client(*codenames: str, name: str = "no-jobs") -> Client:
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_the_rows_pages_link_back_to_their_jobs_story():
    jane = jane_through_the_pipeline()
    client = staff(*ALL_VIEWS)
    site, message, entry = Site.objects.get(), Message.objects.get(), DeadLetter.objects.get()
    submission = LeadSubmission.objects.get()
    for url, job_id in ((f"/admin/sites/site/{site.pk}/change/", site.job_id),
                        (f"/admin/emails/message/{message.pk}/change/", message.job_id),
                        (f"/admin/dlq/deadletter/{entry.pk}/change/", entry.job_id),
                        (f"/admin/leads/leadsubmission/{submission.pk}/change/", submission.job_id),
                        (f"/admin/workers/job/{message.job_id}/change/", message.job_id)):
        assert f"/admin/workers/job/{job_id}/story/" in client.get(url).content.decode(), url
    lead_page = client.get(f"/admin/leads/lead/{jane.pk}/change/").content.decode()
    assert "/admin/workers/search/?q=jane%40acme.io" in lead_page


def test_the_admin_index_and_the_dashboard_link_to_the_search():
    client = staff(*ALL_VIEWS)
    assert 'href="/admin/workers/search/"' in client.get("/admin/").content.decode()
    assert 'action="/admin/workers/search/"' in client.get("/admin/workers/").content.decode()


def test_a_delivery_steps_job_tells_its_run_and_the_leads_search_finds_the_step():
    from delivery.models import DeliveryRun, DeliveryStep
    jane = jane_through_the_pipeline()
    run = DeliveryRun.objects.create(lead=jane, started_by="root")
    step = DeliveryStep.objects.create(run=run, position=1, name="publish_site")
    job = ledger.enqueue("delivery", "delivery.run_step",
                         {"run_id": run.pk, "step_id": step.pk, "step": step.name, "position": 1})
    DeliveryStep.objects.filter(pk=step.pk).update(job_id=job.pk)
    client = staff(*ALL_VIEWS)
    html = client.get(f"/admin/workers/job/{job.pk}/story/").content.decode()
    assert f"/admin/delivery/deliveryrun/{run.pk}/change/" in html and f"/admin/leads/lead/{jane.pk}/change/" in html
    assert "No attempt yet." in html and "None: the job has not given up." in html
    results = searching.search("jane@acme.io", User.objects.get(username="operator"))
    assert [s.pk for s in results.steps] == [step.pk] and job.pk in {j.pk for j in results.jobs}
    root = Client()
    root.force_login(User.objects.create_superuser("root", password="x"))  # the steps' inline: view_deliverystep
    assert f"/admin/workers/job/{job.pk}/story/" in root.get(f"/admin/delivery/deliveryrun/{run.pk}/change/") \
        .content.decode()
