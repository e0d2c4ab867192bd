"""Flower, started as supervisord starts it, against real workers: it asks for its login, and the
task states it shows agree with the ledger (a failed attempt is a failed task, not a "success")."""
import base64
import json
import sys
import urllib.error
import urllib.request

import pytest

from tests.system.processes import free_port, wait_for
from workers.models import Job
from workers.probe import enqueue_probe

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
QUEUE = "delivery"
LOGIN = ("ops", "flower-test-password")


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_flower(processes) -> str:
    port = free_port()
    processes.configure(FLOWER_BASIC_AUTH=":".join(LOGIN))
    processes.start("flower", [sys.executable, "-m", "celery", "-A", "resilience", "flower",
                               f"--port={port}", "--address=127.0.0.1"])
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return get(url)[0] == 401
        except OSError:  # not listening yet
            return False

    assert wait_for(answers, 30), processes.logs()
    return url


def flower_tasks(url: str) -> dict[str, dict]:
    status, body = get(f"{url}/api/tasks", LOGIN)
    assert status == 200, body
    return json.loads(body)


def test_flower_needs_its_login_and_shows_each_job_as_the_ledger_does(processes):
    url = start_flower(processes)  # first, so it sees every event
    processes.worker(QUEUE, "primary", 2)
    processes.dispatcher("primary")
    processes.wait_ready(f"{QUEUE}@primary")
    good = [enqueue_probe(QUEUE) for _ in range(3)]
    bad = [enqueue_probe(QUEUE, fail="permanent")]
    every = [str(job.id) for job in good + bad]
    assert wait_for(lambda: Job.objects.filter(id__in=every, state__in=["succeeded", "dead"]).count() == 4, 30), \
        processes.logs()

    assert get(f"{url}/api/tasks")[0] == 401
    assert get(f"{url}/api/tasks", ("ops", "wrong"))[0] == 401
    expected = {"succeeded": "SUCCESS", "dead": "FAILURE"}
    ledger = {str(job_id): expected[state] for job_id, state in Job.objects.filter(id__in=every)
              .values_list("id", "state")}

    def agrees() -> bool:
        tasks = flower_tasks(url)
        return {job_id: tasks.get(job_id, {}).get("state") for job_id in every} == ledger

    assert wait_for(agrees, 20), (flower_tasks(url), ledger)
    failed = flower_tasks(url)[str(bad[0].id)]
    assert "probe asked to fail permanently" in (failed.get("exception") or "")
    assert failed["name"] == "workers.probe"
