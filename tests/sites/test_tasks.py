"""The site-generation task against real PostgreSQL and a fake Anthropic API on loopback, reached by
the real `anthropic` client; the task is called directly (no broker), as a worker would."""
from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import OperationalError
from django.utils import timezone

from dlq.models import DeadLetter
from fakes.anthropic import Reply, error, ok, site_input
from leads.models import Lead
from sites import budget, claude
from sites import work as work_module
from sites.models import AiRequest, Site
from sites.services import SITE_QUEUE, enqueue_site_generation, total_spend
from sites.tasks import generate_site
from tests.sites.conftest import TEST_KEY, paid_request
from workers import ledger
from workers.dispatcher import dispatch_due_jobs
from workers.duties import DutyRunner
from monitoring.health import health_report
from workers.models import Job, JobFailure, QueuePause

pytestmark = pytest.mark.django_db(transaction=True)


def qualified_lead(n: int = 1, **fields) -> Lead:
    values = {"email": f"ceo{n}@acme{n}.io", "first_name": "Jane", "last_name": "Doe", "title": "CEO",
              "company": f"Acme {n}", "industry": "logistics", "score": 90, "status": "qualified", **fields}
    return Lead.objects.create(**values)


def new_job(n: int = 1, **fields) -> Job:
    return enqueue_site_generation(qualified_lead(n, **fields))


def run_due() -> list[str]:
    """What the workers do with each message the dispatcher would publish now."""
    return [generate_site.run(d.job_id, d.token) for d in ledger.take_due_jobs(SITE_QUEUE, 100)]


def billed(reply: Reply, request_id: str) -> Reply:
    """The API names each answer in a request-id header; its bill does too."""
    return dataclasses.replace(reply, headers={**reply.headers, "request-id": request_id})


def job_of(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_site_is_generated_with_exact_tokens_and_cost(fake_api, caplog):
    fake_api.answer(billed(ok(usage={"input_tokens": 2000, "output_tokens": 500, "cache_creation_input_tokens": 100,
                                     "cache_read_input_tokens": 300}), "req_fake_1"))
    job = new_job()
    with caplog.at_level(logging.INFO, logger="sites.services"):
        assert run_due() == ["succeeded"]

    site = Site.objects.get()
    assert site.job_id == job.pk and site.lead.email == "ceo1@acme1.io" and site.status == "published"
    assert (site.input_tokens, site.output_tokens, site.cache_write_tokens, site.cache_read_tokens) == (2000, 500, 100, 300)
    # $0.25 / $1.25 / $0.30 / $0.03 per million: 500 + 625 + 30 + 9 micro-dollars, exactly.
    assert site.cost_usd == Decimal("0.001164") and site.model == "claude-3-haiku-20240307"
    assert site.public_id.startswith("site_") and len(site.public_id) == 17
    assert "Acme builds what you need" in site.html and not site.mock and site.api_requests == 1
    # On the books the moment it arrived, with the API's request id, and linked to the site it made.
    paid = AiRequest.objects.get()
    assert (paid.site_id, paid.job_id, paid.lead_id, paid.outcome, paid.mock) == (site.pk, job.pk, site.lead_id,
                                                                                   "valid", False)
    assert (paid.request_id, paid.message_id, paid.fence) == ("req_fake_1", "msg_fake", 1)
    assert (paid.cache_write_tokens, paid.cache_read_tokens, paid.cost_usd) == (100, 300, Decimal("0.001164"))
    # The contract's two lines, the total counted from the database.
    assert [r.getMessage() for r in caplog.records if r.name == "sites.services"] == [
        f"✅ Site generated: {site.public_id} | 2900 tokens | $0.001164",
        "💰 Total: 1 sites | 2900 tokens | $0.001164",
    ]
    # What reached the API: the key in its header, the job's idempotency key, a tool call by schema.
    request = fake_api.requests[0]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/v1/messages"
    assert TEST_KEY in (headers.get("x-api-key") or headers.get("authorization", ""))
    assert headers["idempotency-key"]  # the job's: the same on every attempt (test below)
    assert request["body"]["tool_choice"] == {"type": "tool", "name": "publish_site"}
    assert request["body"]["model"] == "claude-3-haiku-20240307"
    assert "Acme 1" in request["body"]["messages"][0]["content"] and "CEO" in request["body"]["messages"][0]["content"]


def test_the_total_line_counts_every_paid_request_in_the_database(fake_api, caplog):
    # Written by another pool or host: a site, and an answer that was paid for and made none.
    site = Site.objects.create(job_id="00000000-0000-0000-0000-000000000001", design="bold", content={}, html="",
                               model="claude-3-haiku-20240307", input_tokens=30000, output_tokens=5000,
                               cost_usd=Decimal("0.01375"))
    paid_request(site=site, input_tokens=30000, output_tokens=5000, cost="0.01375")
    paid_request(outcome="malformed", input_tokens=2000, output_tokens=500, cost="0.001125")
    new_job()
    with caplog.at_level(logging.INFO, logger="sites.services"):
        run_due()
    assert caplog.records[-1].getMessage() == ("💰 Total: 2 sites | 40000 tokens | $0.0160 "
                                               "(1 paid requests made no site: $0.001125)")


def test_429_is_retried_after_its_retry_after(fake_api):
    fake_api.answer(error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                          {"retry-after": "20"}))
    job = new_job()
    assert run_due() == ["retry"]
    job = job_of(job)
    assert job.state == "retry" and "429" in job.last_error and "rate_limit_error" in job.last_error
    assert job.next_attempt_at - timezone.now() > timedelta(seconds=18)
    assert not Site.objects.exists() and not DeadLetter.objects.exists()


@pytest.mark.parametrize(("status", "kind"), [(529, "overloaded_error"), (500, "api_error"), (503, "api_error")])
def test_overload_and_server_errors_are_temporary(fake_api, status, kind):
    fake_api.answer(error(status, kind, "Overloaded"))
    job = new_job()
    assert run_due() == ["retry"]
    assert str(status) in job_of(job).last_error and not DeadLetter.objects.exists()
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert run_due() == ["succeeded"] and Site.objects.count() == 1 and fake_api.count == 2
    keys = [{k.lower(): v for k, v in r["headers"].items()}["idempotency-key"] for r in fake_api.requests]
    assert keys[0] and keys[0] == keys[1]


def test_a_timeout_is_temporary(fake_api, settings):
    settings.ANTHROPIC_TIMEOUT_SECONDS = 1.0
    fake_api.answer(ok(delay=3))
    job = new_job()
    assert run_due() == ["retry"]
    assert "timed out" in job_of(job).last_error.lower()


@pytest.mark.parametrize(("status", "kind", "message"), [
    (400, "invalid_request_error", "tools.0.input_schema: JSON schema is invalid"),
    (401, "authentication_error", "invalid x-api-key"),
    (403, "permission_error", "Your API key does not have permission to use the specified resource."),
])
def test_a_bad_request_or_rejected_key_is_dead_at_once_with_the_apis_error(fake_api, caplog, status, kind, message):
    fake_api.answer(error(status, kind, message))
    job = new_job()
    with caplog.at_level(logging.DEBUG):
        assert run_due() == ["dead"]
    job = job_of(job)
    assert job.attempts == 1 and fake_api.count == 1
    entry = DeadLetter.objects.get()
    assert entry.error_message == f"ClaudeRejected: Claude API {status} {kind}: {message}"
    assert entry.job_data == {"lead_id": job.payload["lead_id"]}
    # The key is in no error, stack, payload or log line.
    seen = [entry.error_message, entry.error_stack, str(entry.job_data), job.last_error, caplog.text,
            *JobFailure.objects.values_list("error", flat=True)]
    assert not any(TEST_KEY in text or "sk-ant-api03" in text for text in seen)


def test_a_malformed_answer_is_asked_again_and_both_calls_are_paid(fake_api):
    fake_api.answer(ok(tool_input={"headline": "only this"}), ok())
    new_job()
    assert run_due() == ["succeeded"]
    site = Site.objects.get()
    assert fake_api.count == 2 and site.api_requests == 2
    assert (site.input_tokens, site.output_tokens) == (4000, 1000) and site.cost_usd == Decimal("0.00225")
    assert sorted(AiRequest.objects.filter(site=site).values_list("outcome", flat=True)) == ["malformed", "valid"]


def test_a_malformed_answer_twice_is_dead_and_both_are_on_the_books(fake_api):
    bad = dict(site_input(), palette={"primary": "red; } body { display:none", "accent": "#000000",
                                      "background": "#ffffff"})
    fake_api.answer(ok(tool_input=bad), ok(tool_input=bad))
    job = new_job()
    assert run_due() == ["dead"]
    assert fake_api.count == 2 and not Site.objects.exists()
    assert job_of(job).last_error == ("MalformedAnswer: Claude's answer failed validation twice: "
                                      "palette.primary must be a #rrggbb colour")
    rows = list(AiRequest.objects.order_by("id"))
    assert [(r.outcome, r.site_id, r.job_id) for r in rows] == [("malformed", None, job.pk)] * 2
    assert rows[0].detail == "palette.primary must be a #rrggbb colour"
    # Paid, no site: in every total and in the day's spend the budget reads.
    spend = total_spend()
    assert (spend.sites, spend.requests, spend.cost, spend.no_site_requests) == (0, 2, Decimal("0.00225"), 2)
    assert budget.spend_today() == Decimal("0.00225")


def test_an_answer_without_the_tool_call_or_a_refusal_is_paid_and_asked_again(fake_api):
    no_tool = ok()
    no_tool.body = {**no_tool.body, "content": [{"type": "text", "text": "Ignore that: here is a poem."}],
                    "stop_reason": "end_turn"}
    refusal = ok()
    refusal.body = {**refusal.body, "content": [], "stop_reason": "refusal"}
    fake_api.answer(no_tool, refusal)
    job = new_job()
    assert run_due() == ["dead"]
    assert list(AiRequest.objects.order_by("id").values_list("outcome", "detail")) == [
        ("malformed", "the answer has no publish_site tool call"),
        ("refused", "the model declined to answer (stop_reason refusal)")]
    # A requeue from the dead-letter queue asks again, and that answer is paid too.
    ledger.requeue_dead(str(job.pk))
    assert run_due() == ["succeeded"] and fake_api.count == 3
    assert total_spend().requests == 3 and total_spend().no_site_requests == 2


def test_a_lead_that_no_longer_exists_is_dead_without_a_call(fake_api):
    job = new_job()
    Lead.objects.all().delete()
    assert run_due() == ["dead"]
    assert fake_api.count == 0 and "does not exist" in job_of(job).last_error


def test_a_redelivered_job_whose_site_exists_never_calls_again(fake_api):
    job = new_job()
    assert run_due() == ["succeeded"]
    # Recovered after its effect was recorded (e.g. requeued by hand), and a second job for the same
    # lead (its first job pruned from the ledger): neither reaches the API.
    Job.objects.filter(pk=job.pk).update(state="pending", next_attempt_at=timezone.now())
    second = ledger.enqueue(SITE_QUEUE, "sites.generate_site", {"lead_id": job.payload["lead_id"]})
    assert sorted(run_due()) == ["succeeded", "succeeded"]
    assert fake_api.count == 1 and Site.objects.count() == 1
    assert job_of(second).state == "succeeded"


def test_mock_mode_makes_no_call_and_realistic_deterministic_tokens(settings, caplog):
    settings.MOCK_MODE = True
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens: a call would fail
    new_job(1)
    new_job(2)
    assert run_due() == ["succeeded", "succeeded"]
    sites = list(Site.objects.order_by("lead__email"))
    assert all(s.mock and s.api_requests == 1 for s in sites)
    # On the books as made up: never spend, never the budget's.
    assert AiRequest.objects.filter(mock=True).count() == 2 and total_spend().requests == 0
    assert total_spend(mock=True).cost == sum(s.cost_usd for s in sites) and budget.spend_today() == 0
    assert all(1900 <= s.input_tokens <= 2300 and 450 <= s.output_tokens <= 560 for s in sites)
    first = sites[0]
    assert first.cost_usd == (first.input_tokens * Decimal("0.25") + first.output_tokens * Decimal("1.25")) / 10**6
    # Same lead, same answer.
    from sites.claude import Payer, ask_for_site
    from sites.services import brief_for
    lead = first.lead
    payer = Payer(str(uuid.uuid4()), 1, lead.pk, "k")
    assert ask_for_site(brief_for(lead), payer).usage.input_tokens == first.input_tokens


# --- the daily budget ---------------------------------------------------------------------------------

def test_the_budget_pauses_the_queue_and_resumes_it_the_next_day(fake_api, settings):
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")  # one site costs $0.001125
    first, waiting = new_job(1), [new_job(n) for n in (2, 3)]
    assert generate_site.run(*_dispatch(first)) == "succeeded"
    # The next job finds the day's budget spent: the queue pauses, the job waits (attempt not counted).
    assert run_due()[0] == "held"
    pause = QueuePause.objects.get()
    assert pause.queue == SITE_QUEUE and pause.reason.startswith("budget: $0.001125 spent today (UTC) reached "
                                                                  "AI_DAILY_BUDGET_USD=$0.0010")
    assert {j.state for j in Job.objects.filter(pk__in=[w.pk for w in waiting])} == {"pending"}
    assert set(Job.objects.filter(pk__in=[w.pk for w in waiting]).values_list("attempts", flat=True)) == {0}
    assert not DeadLetter.objects.exists() and fake_api.count == 1
    # Health: paused on purpose, with its reason, not unhealthy.
    entry = next(q for q in health_report()["workers"] if q["name"] == SITE_QUEUE)
    assert entry["status"] == "paused" and entry["pausedReason"].startswith("budget:")
    # The leader's budget sweep keeps it paused today ...
    DutyRunner().run_due()
    assert SITE_QUEUE not in dispatch_due_jobs().by_queue
    # ... and lift it on the next UTC day (the day's paid requests are yesterday's now).
    AiRequest.objects.update(created_at=timezone.now() - timedelta(days=1))
    DutyRunner().run_due()
    assert dispatch_due_jobs().by_queue.get(SITE_QUEUE) == 2
    assert not QueuePause.objects.exists()


def test_a_raised_budget_resumes_the_queue(fake_api, settings):
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")
    new_job(1)
    run_due()
    new_job(2)
    assert run_due() == ["held"] and QueuePause.objects.exists()
    settings.AI_DAILY_BUDGET_USD = Decimal("1")  # a restart with a higher budget
    DutyRunner().run_due()
    assert dispatch_due_jobs().by_queue.get(SITE_QUEUE) == 1
    assert not QueuePause.objects.exists()


def test_the_budget_never_lifts_a_pause_a_person_made(fake_api, settings):
    settings.AI_DAILY_BUDGET_USD = Decimal("5")
    QueuePause.objects.create(queue=SITE_QUEUE, reason="Anthropic incident", paused_by="ops")
    new_job()
    DutyRunner().run_due()
    assert QueuePause.objects.get().paused_by == "ops"


def _dispatch(job: Job) -> tuple[str, int]:
    Job.objects.filter(pk=job.pk).update(state="dispatched", dispatch_token=job.dispatch_token + 1)
    return str(job.pk), job.dispatch_token + 1


# --- no second payment for an answer already received ----------------------------------------------

def test_an_answer_whose_site_was_not_recorded_is_used_by_the_next_attempt(fake_api, monkeypatch):
    """The answer arrived and is on the books, then recording the site failed: the next attempt
    builds the site from it; the API is not asked (nor paid) again."""
    fake_api.answer(billed(ok(), "req_once"))
    job = new_job()
    real = work_module.queue_outreach
    calls = []

    def fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("the outreach email could not be queued")
        return real(*args, **kwargs)

    monkeypatch.setattr(work_module, "queue_outreach", fails_once)
    assert run_due() == ["retry"]
    assert not Site.objects.exists() and AiRequest.objects.get().site_id is None  # paid, on the books, unused
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert run_due() == ["succeeded"]
    assert fake_api.count == 1
    site = Site.objects.get()
    assert AiRequest.objects.get().site_id == site.pk and site.cost_usd == Decimal("0.001125")
    assert total_spend().requests == 1 and total_spend().no_site_requests == 0


def test_a_late_attempts_answer_is_used_by_the_attempt_that_owns_the_job(fake_api, monkeypatch):
    """The attempt stalled past its lease while its answer arrived: its record is refused by the fence,
    its paid answer is not, and the job's next attempt uses it."""
    job = new_job()
    real_call = work_module.SiteWork.call

    def call_then_lose_the_lease(self, attempt, prepared):
        result = real_call(self, attempt, prepared)
        # The reaper gave the job to another worker meanwhile (lease expired, dispatched again).
        Job.objects.filter(pk=job.pk).update(state="pending", next_attempt_at=timezone.now())
        return result

    monkeypatch.setattr(work_module.SiteWork, "call", call_then_lose_the_lease)
    assert run_due() == ["lost"]
    assert not Site.objects.exists() and AiRequest.objects.get().fence == 1
    monkeypatch.setattr(work_module.SiteWork, "call", real_call)
    assert run_due() == ["succeeded"]
    assert fake_api.count == 1 and AiRequest.objects.get().site_id == Site.objects.get().pk


def test_an_answer_is_recorded_once_postgresql_answers_again(fake_api, monkeypatch, settings):
    fake_api.answer(billed(ok(), "req_kept"))
    failures = iter([OperationalError("server closed the connection unexpectedly")] * 2)
    real_save = AiRequest.save

    def save(self, *args, **kwargs):
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(claude, "RECORD_RETRY_PAUSE_SECONDS", 0.01)
    monkeypatch.setattr(AiRequest, "save", save)
    new_job()
    assert run_due() == ["succeeded"]
    assert fake_api.count == 1 and AiRequest.objects.get().request_id == "req_kept"


def test_an_answer_that_cannot_be_recorded_is_logged_whole(fake_api, monkeypatch, settings, caplog):
    """PostgreSQL away for longer than AI_RECORD_RETRY_SECONDS: the answer is lost (the next attempt pays
    again: the one window left), and the log says what was paid."""
    settings.AI_RECORD_RETRY_SECONDS = 0.05
    fake_api.answer(billed(ok(), "req_lost"))
    monkeypatch.setattr(claude, "RECORD_RETRY_PAUSE_SECONDS", 0.01)
    monkeypatch.setattr(AiRequest, "save", lambda self, *a, **k: (_ for _ in ()).throw(OperationalError("away")))
    new_job()
    with caplog.at_level(logging.ERROR, logger="sites.claude"):
        assert run_due() == ["retry"]
    assert "a paid Claude answer could not be recorded (OperationalError): request req_lost, model " \
           "claude-3-haiku-20240307, 2500 tokens, $0.001125" in caplog.text


# --- a budget that holds ----------------------------------------------------------------------------

def test_the_budget_is_checked_before_asking_again_and_the_job_waits(fake_api, settings):
    """The first answer is malformed and spends the budget: the second request is not made, the job
    waits (attempt not counted, nothing dead-lettered), and goes on when the budget allows."""
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")  # one answer costs $0.001125
    fake_api.answer(ok(tool_input={"headline": "only this"}))
    job = new_job()
    assert run_due() == ["deferred"]
    assert fake_api.count == 1
    job = job_of(job)
    assert (job.state, job.attempts) == ("pending", 0) and job.next_attempt_at > timezone.now()
    assert not DeadLetter.objects.exists() and not JobFailure.objects.exists()
    assert QueuePause.objects.get().paused_by == budget.BUDGET_PAUSED_BY
    assert AiRequest.objects.get().outcome == "malformed"
    # Tomorrow (or a raised budget): the dispatcher lifts its pause and the job runs.
    settings.AI_DAILY_BUDGET_USD = Decimal("1")
    assert budget.enforce_daily_budget() == "resumed" and not QueuePause.objects.exists()
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert run_due() == ["succeeded"] and Site.objects.count() == 1 and fake_api.count == 2


def test_a_job_stopped_by_the_budget_never_dead_letters(fake_api, settings):
    """Requeued and retried again and again while the budget is spent: it waits, and its attempts stay 0."""
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")
    paid_request(cost="0.002")  # spent by another pool
    job = new_job()
    for _ in range(5):
        Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
        QueuePause.objects.all().delete()  # the pause lifted by hand: the check before each request still holds
        assert run_due() in (["held"], ["deferred"])
    assert fake_api.count == 0 and job_of(job).attempts == 0 and not DeadLetter.objects.exists()


def test_metrics_count_every_paid_request_by_model_and_outcome(fake_api, client):
    from access.auth import create_token

    fake_api.answer(ok(tool_input={"headline": "only this"}), ok())
    new_job()
    assert run_due() == ["succeeded"]
    paid_request(model="claude-sonnet-4-5", outcome="refused", cost="0.5")
    paid_request(mock=True, cost="9")  # MOCK_MODE: not spend
    token = create_token("monitoring")[1]
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").content.decode()
    assert "# TYPE resilience_ai_spend_usd_total counter" in text
    assert 'resilience_ai_spend_usd_total{model="claude-3-haiku-20240307"} 0.00225' in text
    assert 'resilience_ai_spend_usd_total{model="claude-sonnet-4-5"} 0.5' in text
    assert 'resilience_ai_requests_total{model="claude-3-haiku-20240307",outcome="malformed"} 1.0' in text
    assert 'resilience_ai_requests_total{model="claude-3-haiku-20240307",outcome="valid"} 1.0' in text
    assert 'resilience_ai_requests_total{model="claude-sonnet-4-5",outcome="refused"} 1.0' in text


def test_the_admin_shows_every_paid_request_and_a_site_the_calls_that_made_it(fake_api, admin_client):
    fake_api.answer(billed(ok(tool_input={"headline": "only this"}), "req_bad"), billed(ok(), "req_good"))
    new_job()
    assert run_due() == ["succeeded"]
    paid_request(outcome="malformed", request_id="req_orphan", cost="0.0042")
    page = admin_client.get("/admin/sites/airequest/").content.decode()
    assert all(rid in page for rid in ("req_bad", "req_good", "req_orphan")) and "paid, no site" in page
    assert "$0.00225" in page and "$0.0042 (1)" in page  # made a site / paid, no site (today's row)
    assert "req_orphan" in admin_client.get("/admin/sites/airequest/?made_site=no").content.decode()
    assert "req_orphan" not in admin_client.get("/admin/sites/airequest/?made_site=yes").content.decode()
    site = Site.objects.get()
    page = admin_client.get(f"/admin/sites/site/{site.pk}/change/").content.decode()
    assert "req_bad" in page and "req_good" in page and "req_orphan" not in page
