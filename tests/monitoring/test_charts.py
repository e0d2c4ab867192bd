"""GET /api/admin/workers/charts: the dashboard's charts from the kept per-minute counts, after real jobs
ran through the runner on real PostgreSQL, without a query on the ledger."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext

from access.auth import create_token
from tests.sites.conftest import paid_request
from workers import ledger
from workers.errors import InvalidData
from workers.job_minutes import fold_job_minutes
from workers.models import Job
from workers.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/admin/workers/charts"


def run_one(queue: str, handler, *, created_ago: float = 0.0) -> str:
    job = ledger.enqueue(queue, "test.task", {})
    if created_ago:
        Job.objects.filter(pk=job.pk).update(created_at=Now() - timedelta(seconds=created_ago))
    [d] = ledger.take_due_jobs(queue, 1)
    assert d.job_id == str(job.pk)
    return run_job(d.job_id, d.token, worker="w", handler=handler)


def refuse(job):
    raise InvalidData("email: not an address")


def fail(job):
    raise ConnectionError("reset")


@pytest.fixture
def client_with_token(client):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {create_token('charts')[1]}"
    return client


def test_the_charts_show_each_queue_s_minutes_waits_and_the_hour_s_spend(client_with_token):
    for ago in (0.0, 0.0, 0.0, 40.0):  # 3 quick starts, one that waited 40 s
        assert run_one("delivery", lambda job: None, created_ago=ago) == "succeeded"
    assert run_one("delivery", fail) == "retry"
    assert run_one("lead-processing", refuse) == "dead"
    paid_request(cost="0.125")
    paid_request(cost="0.5", mock=True)
    fold_job_minutes()
    assert run_one("delivery", lambda job: None) == "succeeded"  # a delta not folded yet counts too

    with CaptureQueriesContext(connection) as queries:
        response = client_with_token.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    # Read from the kept counts, never the ledger (nor its failures)
    assert not [q["sql"] for q in queries.captured_queries if '"workers_job"' in q["sql"]
                or '"workers_jobfailure"' in q["sql"] or "sites_airequest" in q["sql"]]

    assert body["minutes"] == 360
    start = datetime.fromisoformat(body["windowStart"].replace("Z", "+00:00"))
    generated = datetime.fromisoformat(body["generatedAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=359) <= generated - start < timedelta(minutes=360)
    queues = {q["queue"]: q for q in body["queues"]}
    delivery = queues["delivery"]
    assert {name: len(points) for name, points in delivery["perMinute"].items()} == {
        "started": 360, "succeeded": 360, "failed": 360, "rejected": 360}
    assert delivery["totals"] == {"started": 6, "succeeded": 5, "failed": 1, "rejected": 0}
    assert sum(delivery["perMinute"]["started"][-2:]) == 6  # this minute (or the one before, at a turn)
    assert delivery["wait"]["firstAttempts"] == 6
    assert delivery["wait"]["p50"] == {"seconds": 0.1, "atLeast": None}
    assert delivery["wait"]["p95"] == {"seconds": 60, "atLeast": None}  # the 40 s wait: in [30 s, 60 s)
    assert queues["lead-processing"]["totals"] == {"started": 1, "succeeded": 0, "failed": 0, "rejected": 1}
    assert queues["site-generation"]["totals"]["started"] == 0
    assert queues["site-generation"]["wait"] == {"firstAttempts": 0, "p50": None, "p95": None}

    spend = body["aiSpendPerHour"]
    assert len(spend["hours"]) == len(spend["cost"]) == len(spend["requests"]) == 6
    assert spend["cost"][-1] == "$0.1250" and spend["requests"][-1] == 1
    assert spend["mockCost"][-1] == "$0.5000" and spend["cost"][:-1] == ["$0.0000"] * 5


def test_an_empty_system_draws_zeros(client_with_token):
    body = client_with_token.get(URL).json()
    assert all(set(points) == {0} for q in body["queues"] for points in q["perMinute"].values())
    assert body["aiSpendPerHour"]["requests"] == [0] * 6


def test_only_get(client):
    response = client.post(URL, HTTP_AUTHORIZATION=f"Bearer {create_token('ops')[1]}")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
