"""Secrets quoted by a failing job's error stay out of everything a real worker records or emits.

Given: a real lead-processing worker and dispatcher, and a Celery event receiver on the test Redis
(what Flower listens to).
When: leads whose email quotes a secret of each kind fail (stored as a sender might send them, so
no redaction at intake stands between the secret and the failure).
Then: the job's last error, its failure history, the dead-letter entry, the submission's error, the
task-failed events' exception and traceback, and the worker's and dispatcher's captured output all
carry the redacted text, and none of them a secret.
"""
import json
import threading

import pytest
from django.db import transaction

from dlq.models import DeadLetter
from dlq.redaction import REDACTED
from leads import services
from leads.models import LeadSubmission
from resilience.celery import app
from tests.secret_samples import SAMPLES
from tests.system.processes import wait_for
from workers import ledger
from workers.models import Job, JobFailure

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


class EventLog:
    """Celery's events from the test Redis, collected on a thread as Flower collects them."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.receiver = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with app.connection() as connection:
            self.receiver = app.events.Receiver(connection, handlers={"*": self.events.append})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> "EventLog":
        self.thread.start()
        assert wait_for(lambda: self.receiver is not None, 10)
        return self

    def __exit__(self, *exc) -> None:
        self.receiver.should_stop = True  # the receiver looks at it every second
        self.thread.join(10)

    def failed(self) -> dict[str, dict]:
        return {event["uuid"]: event for event in list(self.events) if event["type"] == "task-failed"}


def test_a_failing_jobs_secrets_reach_no_sink_of_a_real_worker(processes):
    processes.configure(LOG_LEVEL="INFO")
    with EventLog() as events:
        processes.worker(services.LEAD_QUEUE, "primary", 2)
        processes.dispatcher("primary")
        processes.wait_ready(f"{services.LEAD_QUEUE}@primary")
        assert wait_for(lambda: any(e["type"] == "worker-online" for e in list(events.events)), 20), events.events

        jobs = []
        with transaction.atomic():
            for text, _ in SAMPLES:
                submission = LeadSubmission.objects.create(source="test", payload={"email": text})
                jobs.append(str(ledger.enqueue(services.LEAD_QUEUE, services.LEAD_TASK,
                                               {"submission_id": submission.pk, "lead": submission.payload}).id))
        assert wait_for(lambda: Job.objects.filter(id__in=jobs, state="dead").count() == len(jobs), 60), \
            processes.logs()
        assert wait_for(lambda: set(jobs) <= set(events.failed()), 20), (events.failed().keys(), processes.logs())
        failed = events.failed()

    entries = {entry.job_id: entry for entry in DeadLetter.objects.filter(job_id__in=jobs)}
    for job_id, (text, secret) in zip(jobs, SAMPLES):
        job = Job.objects.get(pk=job_id)
        entry = entries[job_id]
        event = failed[job_id]
        sinks = {
            "last_error": job.last_error,
            "JobFailure.error": "".join(JobFailure.objects.filter(job_id=job_id).values_list("error", flat=True)),
            "dead-letter message": entry.error_message,
            "dead-letter stack": entry.error_stack,
            "dead-letter data": json.dumps(entry.job_data),
            "submission error": LeadSubmission.objects.get(pk=job.payload["submission_id"]).error,
            "event exception": event["exception"],
            "event traceback": event["traceback"],
        }
        assert not [name for name, value in sinks.items() if secret in value], (text, sinks)
        assert REDACTED in job.last_error, job.last_error
        assert event["exception"].startswith("JobAttemptFailed(") and "job is now dead: InvalidLead: email" in \
            event["exception"], event
        assert REDACTED in event["exception"] and REDACTED in event["traceback"], event
        assert job.last_error == entry.error_message  # one redaction, the same text everywhere

    output = processes.log_text(f"{services.LEAD_QUEUE}@primary") + processes.log_text("dispatcher-primary")
    assert not [secret for _, secret in SAMPLES if secret in output], output
    # The failures are in the worker's output, redacted: the ledger's line and Celery's own.
    assert output.count("dead-lettered after 1 attempt(s): InvalidLead: email") == len(SAMPLES), output
    assert output.count("raised expected: JobAttemptFailed(") == len(SAMPLES), output
