"""GET /api/admin/workers/health and /metrics: the contract's JSON, Prometheus text, and who may read them."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User

from access.auth import create_token
from dlq.services import record_dead_letter
from resilience.db import db_now
from workers.models import Job, WorkerHeartbeat

pytestmark = pytest.mark.django_db

CONTRACT_ENTRY_KEYS = {"name", "healthy", "waiting", "active", "completed", "failed", "failureRate"}


@pytest.fixture
def token() -> str:
    return create_token("monitoring")[1]


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def ledger_state():
    now = db_now()
    Job.objects.bulk_create(
        [Job(queue="lead-processing", task="leads.process_lead", state="succeeded", next_attempt_at=now,
             finished_at=now - timedelta(minutes=1), started_at=now - timedelta(minutes=1)) for _ in range(1234)]
        + [Job(queue="lead-processing", task="leads.process_lead", state="dead", next_attempt_at=now,
               finished_at=now - timedelta(hours=3)) for _ in range(3)]
        + [Job(queue="lead-processing", task="leads.process_lead", state=state, next_attempt_at=now)
           for state in ("pending", "pending", "retry", "dispatched", "running", "running")]
    )
    WorkerHeartbeat.objects.create(name="lead-processing@primary.h", pool="primary", queue="lead-processing",
                                   host="h", pid=42, concurrency=5, started_at=now, beat_at=now,
                                   expires_at=now + timedelta(seconds=45), memory_bytes=123_456_789,
                                   jobs_done=1230, jobs_failed=2, jobs_rejected=4)


def test_health_has_the_contract_shape_with_figures_from_the_ledger(client, token, ledger_state):
    response = client.get("/api/admin/workers/health", **auth(token))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is True and body["overall"] in ("healthy", "degraded", "unhealthy")
    assert [entry["name"] for entry in body["workers"]] == ["lead-processing", "site-generation",
                                                            "email-sending", "delivery"]
    for entry in body["workers"]:
        assert CONTRACT_ENTRY_KEYS <= entry.keys()
        assert isinstance(entry["healthy"], bool) and isinstance(entry["failureRate"], float)
    lead = body["workers"][0]
    assert (lead["waiting"], lead["active"], lead["completed"], lead["failed"], lead["failureRate"]) == (
        4, 2, 1234, 3, 0.24)
    assert lead["healthy"] is True and lead["consumers"] == 1
    assert body["summary"] == {"totalActive": 2, "totalCompleted": 1234, "totalFailed": 3, "allHealthy": False,
                               "totalWaiting": 4, "totalRejected": 0, "pausedQueues": []}  # the other queues have no worker
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])


def test_health_needs_a_token_or_staff_session(client, token):
    anonymous = client.get("/api/admin/workers/health")
    assert anonymous.status_code == 401 and anonymous.json()["success"] is False
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/admin/workers/health", HTTP_AUTHORIZATION="Bearer rsl_wrong").status_code == 401
    # force_login: client.login() calls authenticate() without a request, which login throttling refuses.
    client.force_login(User.objects.create_user("viewer", password="pw-123456789"))
    assert client.get("/api/admin/workers/health").status_code == 403
    ops = User.objects.create_user("ops", password="pw-123456789", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(ops)
    assert client.get("/api/admin/workers/health").json()["success"] is True


def test_health_answers_other_methods_with_405_json(client, token):
    # A method the view does not serve needs no scope: whatever the token may do, it is told what is served.
    writer = create_token("ops-script", scopes=["read", "dlq", "deliver", "admin"])[1]
    for caller in (token, writer):
        response = client.post("/api/admin/workers/health", **auth(caller))
        assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
        assert "not allowed" in response.json()["error"]


def test_metrics_need_the_token(client):
    assert client.get("/metrics").status_code == 401


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample; prometheus_client writes labels sorted by name."""
    rendered = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    series = f"{name}{{{rendered}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} not in the metrics"
    return float(match.group(1))


def test_metrics_expose_queues_jobs_dead_letters_and_heartbeats(client, token, ledger_state, redis_client):
    redis_client.rpush("lead-processing", "m1", "m2")
    record_dead_letter(queue_name="delivery", job_id="j1", job_data={}, error_message="x", error_stack="",
                       attempts_made=3)
    response = client.get("/metrics", **auth(token))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert sample(text, "resilience_jobs", queue="lead-processing", state="succeeded") == 1234
    assert sample(text, "resilience_jobs", queue="lead-processing", state="pending") == 2
    assert sample(text, "resilience_queue_waiting", queue="lead-processing") == 4
    assert sample(text, "resilience_queue_failure_rate_percent", queue="lead-processing") == 0.24
    assert sample(text, "resilience_queue_consumers", queue="lead-processing") == 1
    assert sample(text, "resilience_queue_status", queue="delivery", status="unhealthy") == 1
    assert sample(text, "resilience_queue_status", queue="delivery", status="healthy") == 0
    assert sample(text, "resilience_broker_up") == 1
    assert sample(text, "resilience_broker_queue_length", queue="lead-processing") == 2
    assert sample(text, "resilience_dead_letter_entries", queue="delivery", resolved="false") == 1
    worker = {"worker": "lead-processing@primary.h", "pool": "primary", "queue": "lead-processing"}
    assert sample(text, "resilience_worker_up", **worker) == 1
    assert sample(text, "resilience_worker_memory_bytes", **worker) == 123_456_789
    assert 0 <= sample(text, "resilience_worker_heartbeat_age_seconds", **worker) < 60
    # Rejected input counted apart from the worker's failures, as the queues' figures do.
    assert sample(text, "resilience_worker_jobs_failed_total", **worker) == 2
    assert sample(text, "resilience_worker_jobs_rejected_total", **worker) == 4
    assert "# TYPE resilience_worker_jobs_rejected_total counter" in text


def test_metrics_count_each_process_s_memory_once_and_name_lifetime_totals_as_counters(client, token, ledger_state):
    """Issue 20: a process consuming two queues beats once per queue; sum() over the memory must be the
    process's, not twice it. Lifetime totals are counters (..._total); the old gauges stay one release."""
    from prometheus_client.parser import text_string_to_metric_families

    now = db_now()
    for queue in ("site-generation", "email-sending"):  # the deploy layout's threads worker: one process
        WorkerHeartbeat.objects.create(name=f"network@primary.h/{queue}", pool="primary", queue=queue, host="h", pid=43,
                                       concurrency=3, started_at=now, beat_at=now,
                                       expires_at=now + timedelta(seconds=45), memory_bytes=500_000_000,
                                       jobs_done=7)
    text = client.get("/metrics", **auth(token)).content.decode()
    # The parser names a counter without its _total, like the deprecated gauge of the same old name.
    families = {(family.name, family.type): family for family in text_string_to_metric_families(text)}

    process = families["resilience_worker_process_memory_bytes", "gauge"]
    assert sum(s.value for s in process.samples) == 123_456_789 + 500_000_000
    assert {s.labels["worker"] for s in process.samples} == {"lead-processing@primary.h", "network@primary.h"}

    for name in ("resilience_queue_completed", "resilience_queue_failed", "resilience_queue_rejected",
                 "resilience_worker_jobs_done", "resilience_worker_jobs_failed"):
        assert all(s.name == f"{name}_total" for s in families[name, "counter"].samples), name
    assert sample(text, "resilience_queue_completed_total", queue="lead-processing") == 1234
    assert sample(text, "resilience_worker_jobs_done_total", worker="network@primary.h/email-sending", pool="primary",
                  queue="email-sending") == 7
    # Kept one release under the old names, saying so.
    assert "# HELP resilience_queue_completed Deprecated, removed in the next release: use " \
           "resilience_queue_completed_total" in text
    assert "# HELP resilience_worker_memory_bytes Deprecated" in text
    assert sample(text, "resilience_queue_completed", queue="lead-processing") == 1234
    # Each family once (a second TYPE line for a name is what promtool refuses).
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(types) == len(set(types))


def test_promtool_finds_nothing_wrong_with_the_metrics(client, token, ledger_state):
    """Prometheus's own linter on the endpoint's real output (deploy/run-tests.sh fetches promtool)."""
    import os
    import shutil
    import subprocess

    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not promtool or not os.access(promtool, os.X_OK):
        pytest.skip("promtool is missing (make test fetches it from Debian's prometheus package with apt-get)")
    record_dead_letter(queue_name="delivery", job_id="j1", job_data={}, error_message="x", error_stack="",
                       attempts_made=3)
    text = client.get("/metrics", **auth(token)).content
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        (checked.stdout + checked.stderr).decode()
