"""50 leads through the real webhook, dispatcher and celery workers of two pools.

Given: a primary and a backup pool consuming lead-processing, two dispatcher candidates.
When: 50 leads are posted in batches (some invalid, some duplicates, one batch with a bad secret).
Then: every valid person is stored once, every invalid lead is in the dead-letter table with its
error, the rejected batch left no trace, and no job is unfinished or ran twice.
"""
import json
import random
import urllib.error
import urllib.request

import pytest

from dlq.models import DeadLetter
from leads.models import Lead, LeadSubmission
from tests.system.processes import wait_for
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
SECRET = "test-clay-secret"


def post(url: str, leads: list[dict], secret: str = SECRET) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(leads).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Clay-Secret": secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def make_leads(rng: random.Random) -> tuple[list[dict], list[dict], set[str]]:
    """(accepted batch items, bad-secret items, the valid people's emails)."""
    valid = [
        {"email": f"person{i}@company{i % 7}.io", "first_name": f"P{i}", "last_name": "Test",
         "title": rng.choice(["CEO", "Engineer", "VP Sales", "Marketing Manager"]), "company": f"Company {i % 7}"}
        for i in range(30)
    ]
    duplicates = [
        {"email": f"  PERSON{i}@Company{i % 7}.IO ", "phone": f"+1 555 010 {1000 + i}"} for i in range(0, 16, 2)
    ]
    invalid = [{"email": bad, "first_name": "Broken"} for bad in
               ["not-an-email", "jane@", "@acme.io", "x@localhost", "two words@acme.io", "a@b.c"]]
    bad_secret = [{"email": f"intruder{i}@evil.io"} for i in range(6)]
    items = valid + duplicates + invalid
    rng.shuffle(items)
    return items, bad_secret, {lead["email"] for lead in valid}


def test_fifty_leads_end_to_end(live_server, processes):
    for pool, concurrency in (("primary", 3), ("backup", 2)):
        processes.worker("lead-processing", pool, concurrency)
        processes.dispatcher(pool)
    for pool in ("primary", "backup"):
        processes.wait_ready(f"lead-processing@{pool}")
    url = f"{live_server.url}/api/webhooks/clay"
    items, bad_secret, valid_emails = make_leads(random.Random(7))
    assert len(items) + len(bad_secret) == 50

    job_ids: list[str] = []
    for start in range(0, len(items), 11):
        status, body = post(url, items[start:start + 11])
        assert status == 202, body
        job_ids += body["jobIds"]
    status, body = post(url, bad_secret, secret="wrong-secret")
    assert status == 401 and body["success"] is False

    # Qualified leads also get a site-generation job, which no worker here consumes (test_site_pipeline does).
    finished = wait_for(lambda: Job.objects.filter(queue="lead-processing", state__in=["succeeded", "dead"]).count()
                        == len(job_ids), 90)
    assert finished, processes.logs()

    # Every valid person stored once, duplicates merged into them.
    assert set(Lead.objects.values_list("email", flat=True)) == valid_emails
    assert Lead.objects.filter(times_seen=2).count() == 8
    assert all(lead.phone for lead in Lead.objects.filter(times_seen=2))
    # Every invalid lead dead-lettered with its error and data; nothing else was.
    entries = DeadLetter.objects.all()
    assert sorted(e.job_data["lead"]["email"] for e in entries) == sorted(
        i["email"] for i in items if i.get("first_name") == "Broken")
    assert all(e.error_message.startswith("InvalidLead") and e.attempts_made == 1 for e in entries)
    # The rejected batch left no trace.
    assert not LeadSubmission.objects.filter(payload__email__startswith="intruder").exists()
    # Nothing lost, nothing doubled: every job ran exactly one attempt and finished.
    lead_jobs = Job.objects.filter(queue="lead-processing")
    assert sorted(str(j) for j in lead_jobs.values_list("id", flat=True)) == sorted(job_ids)
    assert set(lead_jobs.values_list("attempts", flat=True)) == {1}
    assert not LeadSubmission.objects.filter(status="received").exists()
    counts = {s: LeadSubmission.objects.filter(status=s).count() for s in ("duplicate", "failed")}
    assert counts == {"duplicate": 8, "failed": 6}
    # Both pools did work.
    workers = set(lead_jobs.values_list("worker", flat=True))
    assert {w.split("@")[1].split(".")[0] for w in workers} == {"primary", "backup"}, workers
