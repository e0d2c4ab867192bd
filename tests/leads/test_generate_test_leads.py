"""`manage.py generate_test_leads` against real PostgreSQL; jobs run in a thread of this process (no broker)."""
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.db import connection

from dlq.models import DeadLetter
from leads.fake import make_fake_leads
from leads.management.commands import generate_test_leads
from leads.models import Lead, LeadSubmission
from leads.services import LEAD_QUEUE, LEAD_TASK
from leads.tasks import process_lead
from workers import ledger
from workers.models import Job

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_ROW = re.compile(r"^  (qualified|disqualified|merged \(duplicate\)|dead-lettered)\s+(\d+)$", re.M)


@pytest.fixture
def lead_worker():
    """What the dispatcher and a Celery worker do, in a thread, until the test ends: take due jobs
    from the ledger and run the real task body for each."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not stop.is_set():
                dispatches = ledger.take_due_jobs(LEAD_QUEUE, 100)
                for dispatch in dispatches:
                    process_lead.run(dispatch.job_id, dispatch.token)
                if not dispatches:
                    stop.wait(0.05)
        except BaseException as exc:  # surfaced at teardown: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection, or the test database cannot be flushed

    thread = threading.Thread(target=work, name="test-lead-worker", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)
    assert not thread.is_alive(), "the test worker did not stop"
    assert not errors, errors


@pytest.mark.django_db
def test_no_wait_queues_the_submissions_and_their_jobs():
    out = StringIO()
    call_command("generate_test_leads", "20", "--no-wait", "--seed", "1", stdout=out, stderr=StringIO())

    submissions = list(LeadSubmission.objects.order_by("pk"))
    assert len(submissions) == 20
    assert {s.source for s in submissions} == {"generate_test_leads"}
    assert {s.status for s in submissions} == {"received"}
    assert len({s.batch_id for s in submissions}) == 1
    assert [s.payload for s in submissions] == make_fake_leads(20, duplicates=0.1, invalid=0.05,
                                                                rng=random.Random(1))
    jobs = Job.objects.filter(queue=LEAD_QUEUE, task=LEAD_TASK, state="pending")
    assert jobs.count() == 20
    assert set(jobs.values_list("id", flat=True)) == {s.job_id for s in submissions}
    assert "Queued 20 test lead(s) (2 duplicate(s), 1 invalid)" in out.getvalue()
    assert "seed 1" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_waits_for_processing_and_the_summary_matches_the_database(lead_worker):
    out, err = StringIO(), StringIO()
    call_command("generate_test_leads", "20", "--seed", "1", "--timeout", "60", stdout=out, stderr=err)

    summary = out.getvalue()
    printed = {label: int(n) for label, n in SUMMARY_ROW.findall(summary)}
    in_db = Counter(LeadSubmission.objects.values_list("status", flat=True))
    assert printed == {
        "qualified": in_db["qualified"],
        "disqualified": in_db["disqualified"],
        "merged (duplicate)": in_db["duplicate"],
        "dead-lettered": in_db["failed"],
    }
    assert in_db["received"] == 0 and sum(printed.values()) == 20
    assert printed["merged (duplicate)"] == 2 and printed["dead-lettered"] == 1
    assert Lead.objects.count() == 17 and DeadLetter.objects.count() == 1
    assert re.search(r"^Done: 20/20 lead\(s\) processed in \d+\.\ds$", summary, re.M)
    [failed] = LeadSubmission.objects.filter(status="failed")
    assert f"  submission {failed.pk}: InvalidLead: " in summary
    assert "20/20 processed" in err.getvalue()  # the last progress line


@pytest.mark.django_db
def test_without_workers_it_gives_up_after_the_timeout_with_a_hint():
    out = StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError) as raised:
        call_command("generate_test_leads", "5", "--timeout", "1", stdout=out, stderr=StringIO())

    assert 1 <= time.monotonic() - started < 5
    assert raised.value.returncode != 0
    assert str(raised.value) == f"5 of 5 lead(s) still waiting after 1s: {generate_test_leads.WORKERS_HINT}"
    assert "supervisorctl -c deploy/supervisord.conf status" in str(raised.value)
    assert "Timed out: 0/5 lead(s) processed" in out.getvalue()
    assert re.search(r"^  still waiting\s+5 ", out.getvalue(), re.M)
    assert Job.objects.filter(queue=LEAD_QUEUE, state="pending").count() == 5  # nothing was cancelled


@pytest.mark.django_db
def test_ctrl_c_stops_waiting_and_leaves_the_jobs(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_test_leads, "wait_for_batch", interrupted)
    err = StringIO()
    with pytest.raises(SystemExit) as raised:
        call_command("generate_test_leads", "3", stdout=StringIO(), stderr=err)

    assert raised.value.code == 130
    assert "Stopped waiting; the jobs keep running" in err.getvalue()
    assert Job.objects.filter(queue=LEAD_QUEUE, state="pending").count() == 3


@pytest.mark.parametrize("args, message", [
    (["0"], "N must be a whole number from 1 to 10000, got '0'"),
    (["10001"], "N must be a whole number from 1 to 10000, got '10001'"),
    (["many"], "N must be a whole number from 1 to 10000, got 'many'"),
    (["5", "--duplicates", "1.5"], "--duplicates must be a number from 0 to 1, got '1.5'"),
    (["5", "--invalid", "x"], "--invalid must be a number from 0 to 1, got 'x'"),
    (["5", "--timeout", "0"], "--timeout must be a number of at least 0.1, got '0'"),
    (["5", "--seed", "abc"], "--seed must be a whole number, got 'abc'"),
    (["4", "--duplicates", "0.5", "--invalid", "0.5"], "leave no original lead"),
])
def test_bad_values_are_refused_before_anything_is_stored(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("generate_test_leads", *args, stdout=StringIO(), stderr=StringIO())


def test_a_bad_value_on_the_command_line_is_one_line():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "manage.py", "generate_test_leads", "0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: N must be a whole number from 1 to 10000, got '0'"]


def test_progress_bar_redraws_in_place_on_a_terminal_and_prints_lines_otherwise():
    terminal = StringIO()
    bar = generate_test_leads.ProgressBar(OutputWrapper(terminal), 20, interactive=True)
    bar.draw(0, 0.0)
    bar.draw(12, 3.14)
    bar.finish()
    assert terminal.getvalue() == (
        "\r[--------------------] 0/20 processed  0.0s"
        "\r[############--------] 12/20 processed  3.1s\n"
    )

    log = StringIO()
    bar = generate_test_leads.ProgressBar(OutputWrapper(log), 20, interactive=False)
    for done, elapsed in [(0, 0.0), (3, 0.5), (8, 5.2), (9, 6.0), (20, 6.5)]:
        bar.draw(done, elapsed)
    bar.finish()
    assert log.getvalue().splitlines() == [
        "[--------------------] 0/20 processed  0.0s",
        "[########------------] 8/20 processed  5.2s",
        "[####################] 20/20 processed  6.5s",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_deliberately_invalid_lead_is_rejected_and_the_queue_stays_healthy(lead_worker):
    """Issue 9, item 7: `generate_test_leads 10` dead-letters its one invalid lead; that is rejected
    input, not a failure rate of 10 %."""
    from datetime import timedelta

    from monitoring.health import health_report
    from resilience.db import db_now
    from workers.models import WorkerHeartbeat

    call_command("generate_test_leads", "10", "--seed", "1", "--timeout", "60", stdout=StringIO(), stderr=StringIO())
    now = db_now()
    for name, pool, queue in ((f"{LEAD_QUEUE}@primary.h", "primary", LEAD_QUEUE),
                              ("dispatcher@h", WorkerHeartbeat.DISPATCHER_POOL, "")):
        WorkerHeartbeat.objects.create(name=name, pool=pool, queue=queue, host="h", pid=1, started_at=now,
                                       beat_at=now, expires_at=now + timedelta(minutes=1))
    assert DeadLetter.objects.count() == 1
    entry = next(e for e in health_report()["workers"] if e["name"] == LEAD_QUEUE)
    assert (entry["status"], entry["completed"], entry["failed"], entry["rejected"]) == ("healthy", 9, 0, 1)
    assert entry["recent"]["failureRate"] == 0.0 and entry["recent"]["errors"] == 0
