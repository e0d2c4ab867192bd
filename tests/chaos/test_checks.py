"""make chaos's checks (chaos/checks.py) against the test database, fed what a broken system would
leave: each must FAIL on its violation and PASS on the same data without it. No soak here."""
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage

import pytest
from django.utils import timezone

from chaos import checks
from dlq.models import DeadLetter
from leads.models import Lead, LeadSubmission
from sites.models import Site
from workers import ledger
from workers.models import Job, JobFailure

pytestmark = pytest.mark.django_db
T0 = timezone.now() - timedelta(hours=1)


def job(queue="lead-processing", state=Job.State.SUCCEEDED, started=None, **payload) -> Job:
    made = ledger.enqueue(queue, "t", payload or {"n": str(uuid.uuid4())})
    Job.objects.filter(pk=made.pk).update(state=state, started_at=started, slot_at=started or T0)
    made.refresh_from_db()
    return made


def lead(email: str, qualified: bool = True) -> Lead:
    return Lead.objects.create(email=email, status=Lead.Status.QUALIFIED if qualified else Lead.Status.DISQUALIFIED)


def site(for_lead: Lead, tokens: int = 2500, cost: str = "0.001125") -> Site:
    return Site.objects.create(lead=for_lead, job_id=uuid.uuid4(), design="bold", content={}, html="", model="m",
                               input_tokens=tokens, cost_usd=Decimal(cost))


def test_rate_limits_count_every_start_of_the_ledger_failed_attempts_included():
    for second in (0, 1, 2):
        job(started=T0 + timedelta(seconds=second))
    retried = job(started=T0 + timedelta(seconds=30))  # its last attempt; the first one failed at 3 s
    JobFailure.objects.create(job=retried, queue="lead-processing", attempt=1, error="WorkerLost",
                              slot_at=T0 + timedelta(seconds=3))
    # Killed between its claim and its slot: no start, whenever it was claimed.
    JobFailure.objects.create(job=retried, queue="lead-processing", attempt=2, error="WorkerLost",
                              started_at=T0 + timedelta(seconds=4))
    job(queue="email-sending", started=T0)

    failing = checks.rate_limits({"lead-processing": (3, 10.0), "email-sending": (1, 10.0), "delivery": None})
    assert not failing.ok and "lead-processing 3/10s: most 4 in 5 starts" in failing.figures
    assert checks.rate_limits({"lead-processing": (4, 10.0), "email-sending": (1, 10.0)}).ok
    assert checks.rate_limits({"lead-processing": (3, 3.0)}).ok  # 0-2 s, then 3 s: never 4 within 3 s
    Job.objects.filter(pk=retried.pk).update(slot_at=None)  # its work done without a slot
    unslotted = checks.rate_limits({"lead-processing": (4, 10.0)})
    assert not unslotted.ok and "1 succeeded without a slot" in unslotted.figures


def test_sites_and_emails_count_the_sink_not_the_database():
    a, b = lead("a@acme.io"), lead("b@acme.io")
    lead("nobody@acme.io", qualified=False)
    site(a), site(b)
    assert checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1})).ok
    twice = checks.sites_and_emails(Counter({"a@acme.io": 2, "b@acme.io": 1}))
    assert not twice.ok and "without exactly one email 1" in twice.figures
    assert not checks.sites_and_emails(Counter({"a@acme.io": 1})).ok  # b's email never arrived
    stray = checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1, "nobody@acme.io": 1}))
    assert not stray.ok and "emails to other addresses 1" in stray.figures
    Site.objects.filter(lead=b).delete()
    no_site = checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1}))
    assert not no_site.ok and "without exactly one site 1" in no_site.figures


def test_recipients_reads_the_to_headers_of_what_the_sink_kept():
    message = EmailMessage()
    message["To"] = "Jane Doe <Jane@Acme.io>"
    assert checks.recipients([message, message]) == Counter({"jane@acme.io": 2})


def test_dead_letters_only_for_the_leads_made_invalid():
    invalid, killed = job(state=Job.State.DEAD), job(queue="site-generation", state=Job.State.DEAD)
    DeadLetter.objects.create(queue_name="lead-processing", job_id=str(invalid.id), job_data={})
    assert checks.dead_letters({str(invalid.id)}).ok
    DeadLetter.objects.create(queue_name="site-generation", job_id=str(killed.id), job_data={},
                              error_message="WorkerLost: lease expired")
    unexpected = checks.dead_letters({str(invalid.id)})
    assert not unexpected.ok and "unexpected 1" in unexpected.figures and "WorkerLost" in unexpected.figures
    missing = checks.dead_letters({str(invalid.id), str(killed.id), str(uuid.uuid4())})
    assert not missing.ok and "missing 1" in missing.figures


def test_ai_cost_compares_the_last_total_line_with_the_database():
    site(lead("a@acme.io")), site(lead("b@acme.io"))
    logs = ["💰 Total: 1 sites | 2500 tokens | $0.001125\n", "x\n💰 Total: 2 sites | 5000 tokens | $0.00225\n"]
    assert checks.ai_cost(logs).ok
    assert not checks.ai_cost(logs[:1]).ok  # the log never saw the second site
    assert not checks.ai_cost(["💰 Total: 2 sites | 5000 tokens | $0.0023\n"]).ok
    assert not checks.ai_cost([]).ok


def test_jobs_final_finds_stuck_jobs_and_qualified_leads_without_work():
    a = lead("a@acme.io")
    job(queue="site-generation", lead_id=a.id)
    assert checks.jobs_final().ok
    stuck = job(state=Job.State.DISPATCHED)
    result = checks.jobs_final()
    assert not result.ok and "unfinished 1" in result.figures
    Job.objects.filter(pk=stuck.pk).update(state=Job.State.SUCCEEDED)
    lead("b@acme.io")  # qualified, but no site-generation job was ever made for it
    result = checks.jobs_final()
    assert not result.ok and "qualified leads without a site job 1" in result.figures


def test_leads_final_needs_every_posted_leads_job_and_a_final_submission():
    done = job()
    LeadSubmission.objects.create(payload={}, status=LeadSubmission.Status.QUALIFIED, job_id=done.id)
    assert checks.leads_final([str(done.id)]).ok
    assert not checks.leads_final([str(done.id), str(uuid.uuid4())]).ok  # a lead the ledger lost
    waiting = job(state=Job.State.RETRY)
    LeadSubmission.objects.create(payload={}, status=LeadSubmission.Status.RECEIVED, job_id=waiting.id)
    result = checks.leads_final([str(done.id), str(waiting.id)])
    assert not result.ok and "1 unfinished" in result.figures
