"""The lead-processing task body against real PostgreSQL, called directly (no broker)."""
import threading

import pytest
from django.db import connection

from dlq.models import DeadLetter
from leads.models import Lead, LeadSubmission
from leads.services import accept_leads
from leads.tasks import process_lead
from workers import ledger
from workers.models import Job


def run_due_jobs() -> list[str]:
    """What a worker does with each published message, in this process."""
    return [process_lead.run(d.job_id, d.token) for d in ledger.take_due_jobs("lead-processing", 100)]


@pytest.mark.django_db(transaction=True)
def test_leads_are_stored_scored_and_merged():
    accept_leads([
        {"email": "Jane@Acme.io", "first_name": "Jane", "last_name": "Doe", "title": "CEO", "company": "Acme"},
        {"email": "bob@gmail.com"},
    ], source="test")
    assert run_due_jobs() == ["succeeded", "succeeded"]
    accept_leads([{"email": " jane@acme.io ", "phone": "+44 20 7946 0958", "title": "ignored: already set"}], source="test")
    assert run_due_jobs() == ["succeeded"]

    jane = Lead.objects.get(email="jane@acme.io")
    assert jane.status == "qualified" and jane.times_seen == 2
    assert jane.phone == "+442079460958" and jane.title == "CEO"  # blanks filled, nothing overwritten
    assert jane.score == 20 + 10 + 10 + 15 + 10 + 10 + 5
    assert Lead.objects.get(email="bob@gmail.com").status == "disqualified"
    statuses = sorted(LeadSubmission.objects.values_list("status", flat=True))
    assert statuses == ["disqualified", "duplicate", "qualified"]
    assert set(Job.objects.filter(queue="lead-processing").values_list("state", flat=True)) == {"succeeded"}
    # The qualified lead got one site-generation job, in the transaction that qualified it; the merged
    # duplicate did not get a second one.
    site_jobs = Job.objects.filter(queue="site-generation")
    assert [(j.payload, j.state, j.idempotency_key) for j in site_jobs] == [
        ({"lead_id": jane.pk}, "pending", f"site-generation:lead:{jane.pk}")]


@pytest.mark.django_db(transaction=True)
def test_a_lead_that_qualifies_on_a_merge_gets_its_site_job_then_and_a_failed_qualification_none(monkeypatch):
    accept_leads([{"email": "sam@acme.io", "first_name": "Sam", "last_name": "Roe"}], source="test")
    assert run_due_jobs() == ["succeeded"]
    assert Lead.objects.get().status == "disqualified" and not Job.objects.filter(queue="site-generation").exists()
    accept_leads([{"email": "sam@acme.io", "title": "Founder", "company": "Acme", "phone": "+1 555 0100 200"}],
                 source="test")
    assert run_due_jobs() == ["succeeded"]
    assert Lead.objects.get().status == "qualified" and Job.objects.filter(queue="site-generation").count() == 1

    # The job is written in the qualifying transaction: when that transaction fails, neither exists.
    from leads import services

    def broken_save(*args, **kwargs):
        raise RuntimeError("database went away")
    monkeypatch.setattr(services.LeadSubmission, "save", broken_save)
    accept_leads([{"email": "kim@beta.io", "first_name": "Kim", "last_name": "Lee", "title": "CEO",
                   "company": "Beta", "phone": "+1 555 0100 300"}], source="test")
    assert run_due_jobs() == ["retry"]
    assert not Lead.objects.filter(email="kim@beta.io").exists()
    assert Job.objects.filter(queue="site-generation").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_receiver_of_lead_qualified_that_fails_rolls_the_qualification_back():
    """Receivers (sites' site job) run in the qualifying transaction and their failure is the job's:
    a qualification whose site job could not be written is retried, never committed without it."""
    from leads.signals import lead_qualified

    def refuses(sender, lead, **kwargs) -> None:
        raise RuntimeError("could not write what follows a qualification")

    lead_qualified.connect(refuses, dispatch_uid="test-refuses")
    try:
        accept_leads([{"email": "kim@beta.io", "first_name": "Kim", "last_name": "Lee", "title": "CEO",
                       "company": "Beta", "phone": "+1 555 0100 300"}], source="test")
        assert run_due_jobs() == ["retry"]
    finally:
        lead_qualified.disconnect(dispatch_uid="test-refuses")
    assert not Lead.objects.exists() and not Job.objects.filter(queue="site-generation").exists()
    assert LeadSubmission.objects.get().status == "received"


@pytest.mark.django_db(transaction=True)
def test_invalid_lead_is_dead_lettered_with_its_data_and_submission_marked():
    [submission] = accept_leads([{"email": "jane@", "first_name": "Jane", "api_token": "tok-123"}], source="test")
    assert run_due_jobs() == ["dead"]
    entry = DeadLetter.objects.get()
    assert entry.job_id == str(submission.job_id) and entry.attempts_made == 1
    assert "InvalidLead" in entry.error_message and "'jane@'" in entry.error_message
    assert entry.job_data["lead"] == {"email": "jane@", "first_name": "Jane", "api_token": "[redacted]"}
    submission.refresh_from_db()
    assert submission.status == "failed" and "InvalidLead" in submission.error
    assert not Lead.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_of_the_same_message_does_nothing():
    accept_leads([{"email": "once@acme.io"}], source="test")
    [d] = ledger.take_due_jobs("lead-processing", 10)
    assert process_lead.run(d.job_id, d.token) == "succeeded"
    assert process_lead.run(d.job_id, d.token) == "skipped"
    assert Lead.objects.get().times_seen == 1


@pytest.mark.django_db(transaction=True)
def test_missing_submission_is_a_permanent_failure():
    [submission] = accept_leads([{"email": "gone@acme.io"}], source="test")
    LeadSubmission.objects.filter(pk=submission.pk).delete()
    assert run_due_jobs() == ["dead"]
    assert "MissingResource" in DeadLetter.objects.get().error_message


@pytest.mark.django_db(transaction=True)
def test_two_workers_processing_the_same_person_at_once_leave_one_lead():
    rounds = 8
    for i in range(rounds):
        accept_leads([{"email": f"race{i}@acme.io", "first_name": "A"},
                      {"email": f"RACE{i}@acme.io", "phone": "+15550001111"}], source="test")
    dispatches = ledger.take_due_jobs("lead-processing", 100)
    by_email: dict[str, list] = {}
    for d in dispatches:
        submission_id = Job.objects.get(pk=d.job_id).payload["submission_id"]
        email = LeadSubmission.objects.get(pk=submission_id).payload["email"].lower()
        by_email.setdefault(email, []).append(d)

    results: list[str] = []

    def worker(d, barrier):
        barrier.wait()
        try:
            results.append(process_lead.run(d.job_id, d.token))
        finally:
            connection.close()

    for pair in by_email.values():
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=worker, args=(d, barrier)) for d in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # Both succeed on their first attempt: the race is handled, not retried away.
    assert results == ["succeeded"] * (2 * rounds)
    assert Lead.objects.count() == rounds
    for lead in Lead.objects.all():
        assert lead.times_seen == 2 and lead.first_name == "A" and lead.phone == "+15550001111"
    statuses = sorted(LeadSubmission.objects.values_list("status", flat=True))
    assert statuses == ["disqualified"] * rounds + ["duplicate"] * rounds  # 35 points: below 50
