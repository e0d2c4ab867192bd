"""A failure is redacted once, where its text is made (workers.ledger), so every place it is
recorded carries the same redacted text: the job's last error, its failure history, the log, the
exception Celery reports (and puts in its task-failed event) and the dead-letter entry."""
import logging
import traceback

import pytest

from dlq.models import DeadLetter
from resilience.redaction import REDACTED
from leads import services
from leads.models import LeadSubmission
from leads.tasks import process_lead
from tests.secret_samples import SAMPLE_IDS, SAMPLES
from workers import ledger
from workers.models import Job, JobFailure
from workers.runner import run_job
from workers.worker_signals import JobAttemptFailed, TaskCrashed

pytestmark = pytest.mark.django_db(transaction=True)


def claimable(queue: str = "delivery", max_attempts: int = 2) -> tuple[Job, ledger.Dispatch]:
    job = ledger.enqueue(queue, "test.task", {})
    Job.objects.filter(pk=job.pk).update(max_attempts=max_attempts)
    [dispatch] = ledger.take_due_jobs(queue, 1)
    return job, dispatch


def redispatch(job: Job) -> ledger.Dispatch:
    Job.objects.filter(pk=job.pk).update(next_attempt_at=job.created_at)
    [dispatch] = ledger.take_due_jobs(job.queue, 1)
    return dispatch


def everything_recorded(job: Job, caplog) -> list[str]:
    entry = DeadLetter.objects.get(job_id=str(job.id))
    return [
        Job.objects.get(pk=job.pk).last_error,
        *JobFailure.objects.filter(job_id=job.id).values_list("error", flat=True),
        *(record.getMessage() for record in caplog.records),
        entry.error_message,
        entry.error_stack,
    ]


@pytest.mark.parametrize(("text", "secret"), SAMPLES, ids=SAMPLE_IDS)
def test_a_retried_then_dead_lettered_failure_is_redacted_everywhere_it_is_recorded(text, secret, caplog):
    caplog.set_level(logging.INFO, logger="workers")
    job, dispatch = claimable()

    def handler(j):
        raise ConnectionError(f"upstream refused {text}")

    assert run_job(dispatch.job_id, dispatch.token, worker="w", handler=handler) == "retry"
    assert run_job(dispatch.job_id, redispatch(job).token, worker="w", handler=handler) == "dead"

    recorded = everything_recorded(job, caplog)
    assert len(recorded) == 1 + 2 + 2 + 2  # last error, two failures, two log lines, message and stack
    assert not [where for where in recorded if secret in where]
    assert all(REDACTED in where for where in recorded)
    last_error = Job.objects.get(pk=job.pk).last_error
    assert last_error.startswith("ConnectionError: upstream refused")
    assert DeadLetter.objects.get().error_message == last_error  # the same text in every sink


@pytest.mark.parametrize(("text", "secret"), SAMPLES, ids=SAMPLE_IDS)
def test_an_invalid_lead_fails_redacted_up_to_the_exception_celery_reports(text, secret, caplog):
    """The lead is stored as a sender might have sent it (not through accept_leads), so the only
    redaction between its email and every sink is the failure's."""
    caplog.set_level(logging.INFO, logger="workers")
    submission = LeadSubmission.objects.create(source="test", payload={"email": text})
    job = ledger.enqueue(services.LEAD_QUEUE, services.LEAD_TASK, {"submission_id": submission.pk})
    [dispatch] = ledger.take_due_jobs(services.LEAD_QUEUE, 1)

    with pytest.raises(JobAttemptFailed) as raised:
        process_lead(dispatch.job_id, dispatch.token)  # through the task class, as a worker calls it

    reported = "".join(traceback.format_exception(raised.value)) + repr(raised.value)
    submission.refresh_from_db()
    recorded = [*everything_recorded(job, caplog), reported, submission.error]
    assert not [where for where in recorded if secret in where]
    assert "InvalidLead: email" in str(raised.value) and REDACTED in str(raised.value)


def test_a_worker_lost_message_is_redacted():
    job, dispatch = claimable(max_attempts=1)
    ledger.claim(dispatch.job_id, dispatch.token, "w")
    reason = "pool process exited (WorkerLostError: child said password=hunter2)"
    assert ledger.release_lost(dispatch.job_id, dispatch.token, "w", reason) == Job.State.DEAD
    assert "hunter2" not in Job.objects.get(pk=job.pk).last_error
    assert "hunter2" not in JobFailure.objects.get().error
    assert DeadLetter.objects.get().error_message == "WorkerLost: pool process exited (WorkerLostError: " \
                                                     "child said password=[redacted]) on w during attempt 1"


def test_an_error_that_escapes_the_ledger_reaches_celery_redacted_and_without_its_chain(monkeypatch):
    """The ledger itself fails while recording an error that quotes a secret: Python chains the two,
    and Celery's event would carry the chain as text."""
    submission = LeadSubmission.objects.create(source="test", payload={"email": "x:Hunter2Url@evil"})
    ledger.enqueue(services.LEAD_QUEUE, services.LEAD_TASK, {"submission_id": submission.pk})
    [dispatch] = ledger.take_due_jobs(services.LEAD_QUEUE, 1)

    def ledger_down(job, exc):
        raise RuntimeError(f"could not record {exc}")

    monkeypatch.setattr(ledger, "fail", ledger_down)
    with pytest.raises(TaskCrashed) as raised:
        process_lead(dispatch.job_id, dispatch.token)
    reported = "".join(traceback.format_exception(raised.value)) + repr(raised.value)
    assert "Hunter2Url" not in reported
    assert "RuntimeError: could not record email 'x:[redacted]@evil'" in str(raised.value)
    assert "ledger_down" in reported  # where it happened is kept


def test_a_postgresql_error_quoting_the_jobs_data_is_recorded_redacted(caplog):
    """PostgreSQL refuses a value and quotes the statement and the JSON around it in its error."""
    caplog.set_level(logging.INFO, logger="workers")
    job, dispatch = claimable(max_attempts=1)

    secret = "PgSecret" + "9"  # built, so that the traceback's source lines do not quote it
    payload = {"note": f"{'q' * 200} {secret} {'r' * 10}", "password": secret, "bad": "\u0000"}

    def handler(j):
        LeadSubmission.objects.create(source="test", payload=payload)

    assert run_job(dispatch.job_id, dispatch.token, worker="w", handler=handler) == "dead"
    recorded = everything_recorded(job, caplog)
    assert "DataError: unsupported Unicode escape sequence" in recorded[0]
    assert not [where for where in recorded if secret in where], recorded
