import pytest

from dlq.models import DeadLetter
from workers import ledger
from workers.models import Job
from workers.probe import enqueue_probe, probe_starts
from workers.tasks import probe

pytestmark = pytest.mark.django_db(transaction=True)


def run_all(queue):
    return [probe.run(d.job_id, d.token) for d in ledger.take_due_jobs(queue, 100)]


def test_probe_counts_each_start_and_finishes(redis_client):
    job = enqueue_probe("delivery")
    assert run_all("delivery") == ["succeeded"]
    assert probe_starts(str(job.id)) == 1
    assert Job.objects.get(pk=job.pk).state == "succeeded"


def test_failing_probes_retry_or_dead_letter(redis_client, settings):
    transient = enqueue_probe("email-sending", fail="transient")
    permanent = enqueue_probe("email-sending", fail="permanent")
    assert sorted(run_all("email-sending")) == ["dead", "retry"]
    assert Job.objects.get(pk=transient.pk).state == "retry"
    assert DeadLetter.objects.get().job_id == str(permanent.id)


def test_unknown_failure_kind_is_refused():
    with pytest.raises(ValueError):
        enqueue_probe("delivery", fail="sometimes")
