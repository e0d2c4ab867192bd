"""Flower, started as supervisord starts it (access.flower), against real workers: it asks for its
login on every page, /metrics and /healthcheck included, refuses to start without one, and the task
states it shows agree with the ledger (a failed attempt is a failed task, not a "success")."""
import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.system.processes import ROOT, free_port, wait_for
from workers.models import Job
from workers.probe import enqueue_probe

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
QUEUE = "delivery"
LOGIN = ("ops", "flower-test-password")
FLOWER = [sys.executable, "-m", "access.flower"]  # what deploy/supervisord.conf runs


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def flower_paths() -> list[str]:
    """A concrete path for each of Flower's routes, its static files left out."""
    import re

    from flower.urls import handlers

    patterns = [handler[0] if isinstance(handler, tuple) else handler.regex.pattern for handler in handlers]
    paths = [re.sub(r"\(\.[+*]\)", "probe-1", pattern).rstrip("$").replace("/?", "/")
             for pattern in patterns if not pattern.startswith("/static/")]
    # Logging in and out need no login (/login/ is OAuth's, 404 without a provider; /logout clears a cookie),
    # and the catch-all answers 404 to anyone: it shows nothing.
    return [path for path in paths if path not in ("/login/", "/logout", ".*")]


def send(url: str, auth: tuple[str, str] | None, data: bytes | None) -> int:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_flower(processes) -> str:
    port = free_port()
    processes.configure(FLOWER_BASIC_AUTH=":".join(LOGIN))
    processes.start("flower", FLOWER + [f"--port={port}", "--address=127.0.0.1"])
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

    # Upstream Flower serves these two to anyone (mher/flower#1342); /metrics names workers and tasks.
    for path in ("/metrics", "/healthcheck"):
        status, body = get(f"{url}{path}")
        assert status == 401 and b"workers.probe" not in body and f"{QUEUE}@primary".encode() not in body
        assert get(f"{url}{path}", ("ops", "wrong"))[0] == 401
    # Every page and API Flower registers (derived from its URL table, so a new one is walked too), read or
    # written, without the login or with a wrong one. Only its static files (CSS and scripts) are open.
    # Tornado turns away a method a page does not serve (405) before anything else; the one it serves
    # must ask for the login.
    wrong = []
    for path in flower_paths():
        for auth in (None, ("ops", "wrong"), ("nobody", LOGIN[1])):
            statuses = {send(f"{url}{path}", auth, data) for data in (None, b"{}")}
            if 401 not in statuses or not statuses <= {401, 405}:
                wrong.append((path, auth, statuses))
    assert not wrong, wrong

    status, metrics = get(f"{url}/metrics", LOGIN)
    assert status == 200 and b'task="workers.probe"' in metrics
    assert get(f"{url}/healthcheck", LOGIN) == (200, b"OK")


@pytest.mark.parametrize("login, problem", [
    (None, "FLOWER_BASIC_AUTH is not set"),
    ("", "FLOWER_BASIC_AUTH is not set"),
    (" , ", "FLOWER_BASIC_AUTH is not set"),
    ("admin", "an entry has no password"),
    ("admin:", "an entry has no password"),
    ("ops:pw,:pw", "an entry has no user"),
])
def test_flower_refuses_to_start_without_its_login(login, problem):
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    if login is not None:
        env["FLOWER_BASIC_AUTH"] = login
    result = subprocess.run(FLOWER + [f"--port={free_port()}", "--address=127.0.0.1"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: FLOWER_BASIC_AUTH") and problem in result.stderr
    assert result.stderr.count("\n") == 1
