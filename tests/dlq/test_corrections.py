"""Fix and rerun: a lead refused for its data is corrected in the dead-letter admin (the webhook's fields and
rules), requeued, and goes through to a site; the original and the correction are both kept. An entry whose
job holds only ids says which row to fix instead."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from dlq.models import DeadLetter, DeadLetterCorrection
from dlq.services import record_dead_letter
from leads.models import Lead, LeadSubmission
from leads.services import accept_leads
from sites.models import Site
from sites.tasks import generate_site
from tests.leads.test_tasks import run_due_jobs
from workers import ledger
from workers.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = {"email": "jane@acme", "firstName": "Jane", "last_name": "Doe", "title": "CEO", "company": "Acme",
           "industry": "logistics", "website": "acme.io", "employees": 250, "source_row": 17}


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


def refused_lead() -> DeadLetter:
    [submission] = accept_leads([REFUSED], source="test")
    assert run_due_jobs() == ["dead"]
    return DeadLetter.objects.get(job_id=str(submission.job_id))


def correct_url(entry: DeadLetter) -> str:
    return f"/admin/dlq/deadletter/{entry.pk}/correct/"


def form_data(page, **changes) -> dict:
    form = page.context["form"]
    return {**{name: field.initial for name, field in form.fields.items() if name != "notes"}, **changes}


def test_a_refused_lead_is_corrected_requeued_and_becomes_a_site(admin_client):
    entry = refused_lead()
    change_page = admin_client.get(f"/admin/dlq/deadletter/{entry.pk}/change/").content.decode()
    assert correct_url(entry) in change_page and "Correct the input and requeue" in change_page

    page = admin_client.get(correct_url(entry))
    assert page.status_code == 200 and page.context["form"].fields["email"].initial == "jane@acme"
    assert page.context["form"].fields["first_name"].initial == "Jane"  # under the source's own key, firstName

    done = admin_client.post(correct_url(entry), form_data(page, email="jane@acme.io", notes="typo in the domain"))
    assert done.status_code == 302, done.content.decode()[:2000]

    correction = DeadLetterCorrection.objects.get(entry=entry)
    assert correction.original == REFUSED and correction.corrected_by == "root"
    assert correction.corrected == {**REFUSED, "email": "jane@acme.io"}  # the source's keys and extra columns kept
    submission = LeadSubmission.objects.get(pk=entry.job_data["submission_id"])
    assert submission.payload == {**REFUSED, "email": "jane@acme.io"} and submission.status == "received"
    history = LogEntry.objects.get(object_id=str(entry.pk))
    assert history.change_message.startswith(f"Corrected the input (lead submission {submission.pk}) and requeued")
    entry.refresh_from_db()
    assert entry.resolved and entry.resolved_by == "root" and "Corrected email in lead submission" in entry.notes
    assert "typo in the domain" in entry.notes
    assert "was <code>" in admin_client.get(f"/admin/dlq/deadletter/{entry.pk}/change/").content.decode()

    # The pipeline as the other tests run it (MOCK_MODE): the corrected lead is qualified, and gets its site.
    assert run_due_jobs() == ["succeeded"]
    lead = Lead.objects.get(email="jane@acme.io")
    assert lead.status == "qualified" and lead.first_name == "Jane"
    assert [generate_site.run(d.job_id, d.token) for d in ledger.take_due_jobs("site-generation", 10)] == ["succeeded"]
    assert Site.objects.get(lead=lead).status == "published"


@pytest.mark.parametrize("changes, words", [
    ({"email": "still@wrong"}, "email 'still@wrong' has no valid domain"),  # the lead job's rule
    ({"email": ""}, "email: is required"),  # the webhook's rules
    ({"company": "x" * 201}, "company: is longer than 200 characters"),
])
def test_a_correction_the_rules_refuse_changes_nothing(admin_client, changes, words):
    entry = refused_lead()
    page = admin_client.get(correct_url(entry))
    answer = admin_client.post(correct_url(entry), form_data(page, **changes))
    assert answer.status_code == 200 and words in answer.content.decode().replace("&#x27;", "'")
    assert not DeadLetterCorrection.objects.exists()
    assert LeadSubmission.objects.get().payload == REFUSED
    assert Job.objects.get(pk=entry.job_id).state == "dead" and not DeadLetter.objects.get(pk=entry.pk).resolved


def test_an_entry_whose_job_holds_only_ids_names_the_row_to_fix(admin_client):
    lead = Lead.objects.create(email="bob@acme.io", status="qualified")
    job = Job.objects.create(queue="site-generation", task="sites.generate_site", payload={"lead_id": lead.pk},
                             state="dead", next_attempt_at=timezone.now())
    entry = record_dead_letter(queue_name="site-generation", job_id=str(job.id), job_data=job.payload,
                               error_message="InvalidData: lead has no company", error_stack="", attempts_made=1)
    page = admin_client.get(f"/admin/dlq/deadletter/{entry.pk}/change/").content.decode()
    assert "The job's data holds only ids: correct" in page
    assert f'<a href="/admin/leads/lead/{lead.pk}/change/">lead {lead.pk}</a>' in page
    assert admin_client.get(correct_url(entry)).status_code == 404


def test_staff_who_may_only_view_entries_cannot_correct(client, redis_client):
    entry = refused_lead()
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(user)
    assert client.get(correct_url(entry)).status_code == 403
    assert client.post(correct_url(entry), {"email": "jane@acme.io"}).status_code == 403
    assert not DeadLetterCorrection.objects.exists() and Job.objects.get(pk=entry.job_id).state == "dead"
