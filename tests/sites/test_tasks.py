"""The site-generation task against real PostgreSQL and a fake Anthropic API on loopback, reached by
the real `anthropic` client; the task is called directly (no broker), as a worker would."""
from __future__ import annotations

import logging
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from dlq.models import DeadLetter
from leads.models import Lead
from sites.models import Site
from sites.services import SITE_QUEUE, enqueue_site_generation
from sites.tasks import generate_site
from tests.sites.conftest import TEST_KEY
from tests.sites.fake_anthropic import error, ok, site_input
from workers import ledger
from workers.dispatcher import dispatch_due_jobs
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


def job_of(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_site_is_generated_with_exact_tokens_and_cost(fake_api, caplog):
    fake_api.answer(ok(usage={"input_tokens": 2000, "output_tokens": 500, "cache_creation_input_tokens": 100,
                              "cache_read_input_tokens": 300}))
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


def test_the_total_line_counts_every_site_in_the_database(fake_api, caplog):
    Site.objects.create(job_id="00000000-0000-0000-0000-000000000001", design="bold", content={}, html="",
                        model="claude-3-haiku-20240307", input_tokens=30000, output_tokens=5000,
                        cost_usd=Decimal("0.01375"))  # written by another pool or host
    new_job()
    with caplog.at_level(logging.INFO, logger="sites.services"):
        run_due()
    assert caplog.records[-1].getMessage() == "💰 Total: 2 sites | 37500 tokens | $0.014875"


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


def test_a_malformed_answer_twice_is_dead(fake_api):
    bad = dict(site_input(), palette={"primary": "red; } body { display:none", "accent": "#000000",
                                      "background": "#ffffff"})
    fake_api.answer(ok(tool_input=bad), ok(tool_input=bad))
    job = new_job()
    assert run_due() == ["dead"]
    assert fake_api.count == 2 and not Site.objects.exists()
    assert job_of(job).last_error == ("MalformedAnswer: Claude's answer failed validation twice: "
                                      "palette.primary must be a #rrggbb colour")


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
    assert all(s.mock and s.api_requests == 0 for s in sites)
    assert all(1900 <= s.input_tokens <= 2300 and 450 <= s.output_tokens <= 560 for s in sites)
    first = sites[0]
    assert first.cost_usd == (first.input_tokens * Decimal("0.25") + first.output_tokens * Decimal("1.25")) / 10**6
    # Same lead, same answer.
    from sites.claude import ask_for_site
    from sites.services import brief_for
    lead = first.lead
    assert ask_for_site(brief_for(lead), "k").usage.input_tokens == first.input_tokens


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
    # The leader's rounds keep it paused today ...
    assert SITE_QUEUE not in dispatch_due_jobs().by_queue
    # ... and lift it on the next UTC day (the day's sites are yesterday's now).
    Site.objects.update(created_at=timezone.now() - timedelta(days=1))
    assert dispatch_due_jobs().by_queue.get(SITE_QUEUE) == 2
    assert not QueuePause.objects.exists()


def test_a_raised_budget_resumes_the_queue(fake_api, settings):
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")
    new_job(1)
    run_due()
    new_job(2)
    assert run_due() == ["held"] and QueuePause.objects.exists()
    settings.AI_DAILY_BUDGET_USD = Decimal("1")  # a restart with a higher budget
    assert dispatch_due_jobs().by_queue.get(SITE_QUEUE) == 1
    assert not QueuePause.objects.exists()


def test_the_budget_never_lifts_a_pause_a_person_made(fake_api, settings):
    settings.AI_DAILY_BUDGET_USD = Decimal("5")
    QueuePause.objects.create(queue=SITE_QUEUE, reason="Anthropic incident", paused_by="ops")
    new_job()
    dispatch_due_jobs()
    assert QueuePause.objects.get().paused_by == "ops"


def test_spend_past_the_budget_is_bounded_by_the_calls_already_running(fake_api, settings, monkeypatch):
    """Six calls run at once (3 per pool x 2 pools, the dispatcher's in-flight bound) while the first
    to finish reaches the budget: those six complete, nothing after them starts."""
    # The six threads here share one worker name; in production they are two pools of three, each
    # within its own concurrency (workers.runner.worker_at_concurrency), which this test is not about.
    monkeypatch.setattr("workers.runner.worker_at_concurrency", lambda job: False)
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")  # reached by the first site
    fake_api.default = ok(delay=1.0)
    jobs = [new_job(n) for n in range(10)]
    in_flight = settings.QUEUE_CONCURRENCY[SITE_QUEUE] * settings.WORKER_POOLS
    dispatches = ledger.take_due_jobs(SITE_QUEUE, in_flight)
    results: list[str] = []

    def worker(dispatch) -> None:
        try:
            results.append(generate_site.run(dispatch.job_id, dispatch.token))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(d,)) for d in dispatches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["succeeded"] * in_flight
    assert run_due() == ["held"] * (10 - in_flight) and dispatch_due_jobs().by_queue.get(SITE_QUEUE) is None
    per_site = Decimal("0.001125")
    spent = sum(Site.objects.values_list("cost_usd", flat=True))
    assert spent == in_flight * per_site <= settings.AI_DAILY_BUDGET_USD + in_flight * per_site
    assert fake_api.count == in_flight
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], state="pending", attempts=0).count() == 10 - in_flight


def _dispatch(job: Job) -> tuple[str, int]:
    Job.objects.filter(pk=job.pk).update(state="dispatched", dispatch_token=job.dispatch_token + 1)
    return str(job.pk), job.dispatch_token + 1
