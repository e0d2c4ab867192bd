"""Leads flow lead-processing -> site-generation through real workers, the real `anthropic` client
and a fake Anthropic API on loopback.

Given: a lead-processing worker, site-generation workers in two pools, a dispatcher; the workers'
client sent to the fake API (MOCK_MODE off, a test key).
When: 30 fake leads (some duplicates, some invalid) are accepted as the webhook would, and after they
are done every site job's old messages are published again.
Then: every qualified lead has exactly one site, the API was asked once per site, each site logged
the contract's two lines, the last total matches the database, and the public page answers.
"""
import hashlib
import random
import re
import urllib.request

import pytest
from django.conf import settings

from emails.models import Message
from fakes.anthropic import FakeAnthropic
from leads.fake import make_fake_leads
from leads.models import Lead
from leads.services import accept_leads
from resilience.celery import app
from sites.models import Site
from sites.services import SITE_QUEUE, SITE_TASK, total_line, total_spend
from tests.sites.conftest import TEST_KEY
from tests.system.processes import wait_for
from workers.models import Job

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def test_every_qualified_lead_ends_with_exactly_one_site(live_server, processes):
    fake = FakeAnthropic().start()
    try:
        processes.configure(LOG_LEVEL="INFO", MOCK_MODE="false", ANTHROPIC_API_KEY=TEST_KEY,
                            PUBLIC_BASE_URL=settings.PUBLIC_BASE_URL,
                            ANTHROPIC_BASE_URL=fake.url, SITE_GENERATION_CONCURRENCY="2")
        processes.worker("lead-processing", "primary", 2)
        for pool in ("primary", "backup"):
            processes.worker(SITE_QUEUE, pool, 2)
        processes.dispatcher("primary")
        for name in ("lead-processing@primary", f"{SITE_QUEUE}@primary", f"{SITE_QUEUE}@backup"):
            processes.wait_ready(name)

        accept_leads(make_fake_leads(30, rng=random.Random(3)), source="test")

        def settled() -> bool:
            # (email-sending has no worker here: the outreach emails wait in the ledger)
            return (not Job.objects.exclude(queue="email-sending").exclude(state__in=["succeeded", "dead"]).exists()
                    and Job.objects.filter(queue=SITE_QUEUE).count()
                    == Lead.objects.filter(status="qualified").count() > 0)

        assert wait_for(settled, 120), processes.logs()
        qualified = set(Lead.objects.filter(status="qualified").values_list("id", flat=True))
        assert 5 <= len(qualified) < 30
        site_jobs = Job.objects.filter(queue=SITE_QUEUE)
        assert set(site_jobs.values_list("state", flat=True)) == {"succeeded"}
        assert sorted(Site.objects.values_list("lead_id", flat=True)) == sorted(qualified)
        assert fake.count == len(qualified)
        # Each site queued its lead's outreach email, with its link, in the transaction that recorded it.
        outreach = Message.objects.filter(kind=Message.Kind.OUTREACH)
        assert sorted(outreach.values_list("lead_id", flat=True)) == sorted(qualified)
        assert {m.site_url for m in outreach} == {site.public_url for site in Site.objects.all()}

        # Redelivered messages (every token each job was published with) change nothing.
        for job in site_jobs:
            for token in range(1, job.dispatch_token + 1):
                app.send_task(SITE_TASK, args=[str(job.id), token], task_id=str(job.id), queue=SITE_QUEUE,
                              routing_key=SITE_QUEUE)
        executions = lambda: sum(processes.log_text(n).count("succeeded in") for n in processes.procs  # noqa: E731
                              if n.startswith(SITE_QUEUE))
        assert wait_for(lambda: executions() >= 2 * len(qualified), 60), processes.logs()
        assert Site.objects.count() == len(qualified) and fake.count == len(qualified)

        # The contract's lines: one per site, and the last total is the database's.
        logs = "\n".join(processes.log_text(n) for n in processes.procs if n.startswith(SITE_QUEUE))
        generated = re.findall(r"✅ Site generated: (site_[a-z0-9]{12}) \| (\d+) tokens \| \$([0-9.]+)", logs)
        assert sorted(g[0] for g in generated) == sorted(Site.objects.values_list("public_id", flat=True))
        assert total_line(total_spend()) in logs
        print(total_line(total_spend()))

        site = Site.objects.first()
        with urllib.request.urlopen(f"{live_server.url}/sites/{site.public_id}/", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    finally:
        fake.stop()


class MalformedFirstAsks:
    """The fake's script: the first ask of one job in `every` gets an answer that fails validation (its
    second ask, `:again`, a valid one), so jobs ask twice and both asks are paid. The fake pops its
    script under its lock right after logging the request, so the last request is the one to answer."""

    def __init__(self, fake: FakeAnthropic, every: int) -> None:
        self.fake, self.every = fake, every

    def __bool__(self) -> bool:
        return True

    def popleft(self):
        from fakes.anthropic import ok

        headers = {k.lower(): v for k, v in self.fake.requests[-1]["headers"].items()}
        key = headers.get("idempotency-key", "")
        first_ask = not key.endswith(":again")
        if first_ask and int(hashlib.sha256(key.encode()).hexdigest(), 16) % self.every == 0:
            return ok(tool_input={"headline": "no sections"}, delay=0.8)
        return self.fake.default


def test_the_budget_holds_on_the_wire_and_the_dispatcher_resumes_it_the_next_day(processes):
    """Real workers of two pools against a fake API whose answers are slow and one in three malformed,
    across a daily budget of about four requests: counted at the fake, the requests it answered cost no
    more than the budget plus the requests in flight when it was reached; every one of them is on the
    books; the queue paused with jobs waiting (none failed, none dead); the next UTC day the leading
    dispatcher resumes it by itself."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from dlq.models import DeadLetter
    from fakes.anthropic import USAGE, ok
    from sites.budget import BUDGET_PAUSED_BY
    from sites.models import AiRequest
    from sites.services import cost_of, enqueue_site_generation
    from sites.content import Usage
    from workers.models import JobFailure, QueuePause

    budget = Decimal("0.005")
    per_request = cost_of(Usage.from_api(USAGE), "claude-3-haiku-20240307")  # $0.001125: every answer's usage
    fake = FakeAnthropic(default=ok(delay=0.8))
    fake.script = MalformedFirstAsks(fake, every=3)
    fake.start()
    try:
        pools, concurrency = 2, 2
        processes.configure(LOG_LEVEL="INFO", MOCK_MODE="false", ANTHROPIC_API_KEY=TEST_KEY,
                            PUBLIC_BASE_URL=settings.PUBLIC_BASE_URL,
                            ANTHROPIC_BASE_URL=fake.url, AI_DAILY_BUDGET_USD=str(budget),
                            SITE_GENERATION_CONCURRENCY=str(concurrency), WORKER_POOLS=str(pools))
        for pool in ("primary", "backup"):
            processes.worker(SITE_QUEUE, pool, concurrency)
        processes.dispatcher("primary")
        for pool in ("primary", "backup"):
            processes.wait_ready(f"{SITE_QUEUE}@{pool}")
        for n in range(12):
            enqueue_site_generation(Lead.objects.create(email=f"ceo{n}@acme{n}.io", title="CEO",
                                                        company=f"Acme {n}", industry="logistics", score=90,
                                                        status="qualified"))

        paused = lambda: QueuePause.objects.filter(queue=SITE_QUEUE, paused_by=BUDGET_PAUSED_BY).exists()  # noqa: E731
        idle = lambda: not Job.objects.filter(queue=SITE_QUEUE, state__in=["dispatched", "running"]).exists()  # noqa: E731
        assert wait_for(lambda: paused() and idle(), 90), processes.logs()
        answered = fake.count  # the fake's own count: every request it answered was paid
        handed_out = answered * per_request
        in_flight = pools * concurrency
        print(f"budget {budget}: the fake answered {answered} requests ({handed_out}), "
              f"{Site.objects.count()} sites made")
        assert handed_out >= budget
        assert handed_out - budget <= in_flight * per_request, f"{answered} requests answered past the bound"
        # Every answer the fake gave is on the books, and nothing the fake did not give.
        assert AiRequest.objects.filter(mock=False).count() == answered
        assert total_spend().cost == handed_out
        # The budget made nothing fail: the rest wait, their attempts uncounted.
        assert not DeadLetter.objects.exists()
        assert not JobFailure.objects.filter(job__queue=SITE_QUEUE).exists()
        waiting = Job.objects.filter(queue=SITE_QUEUE, state="pending")
        assert waiting.count() == 12 - Site.objects.count() > 0
        assert set(waiting.values_list("attempts", flat=True)) == {0}

        # The next UTC day: the dispatcher's sweep lifts its own pause, the queue runs again.
        first_day = Site.objects.count()
        AiRequest.objects.update(created_at=timezone.now() - timedelta(days=1))
        assert wait_for(lambda: Site.objects.count() > first_day, 60), processes.logs()
        assert "site-generation resumed" in processes.log_text("dispatcher-primary")
        assert not DeadLetter.objects.exists()
    finally:
        fake.stop()
