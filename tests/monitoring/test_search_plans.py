"""The operator's search stays cheap however large the tables grow: a fixed number of queries, and
every lookup answered from an index (never a Seq Scan), read from PostgreSQL's own plans on tables of
20,000 rows each, written with one INSERT ... SELECT generate_series per table."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from django.db import connection, models
from django.test.utils import CaptureQueriesContext

from delivery.models import DeliveryRun, DeliveryStep
from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead, LeadSubmission
from monitoring import search as searching
from sites.models import Site
from workers.models import Job

pytestmark = pytest.mark.django_db

ROWS = 20_000
MIDDLE = ROWS // 2


def fill(model: type[models.Model], **given: str) -> None:
    """ROWS rows of `model` in one statement; `given` are SQL expressions of g (1..ROWS) per column,
    every other NOT NULL column gets a plain value of its type."""
    columns, values = [], []
    for f in model._meta.concrete_fields:
        if isinstance(f, models.AutoField):
            continue
        if f.column in given:
            value = given[f.column]
        elif f.null:
            continue
        elif isinstance(f, models.UUIDField):
            value = f"md5('{f.column}-' || g)::uuid"
        elif isinstance(f, models.JSONField):
            value = "'{}'::jsonb"
        elif isinstance(f, models.BooleanField):
            value = "false"
        elif isinstance(f, models.DateTimeField):
            value = "now() - g * interval '1 second'"
        elif isinstance(f, models.DateField):
            value = "current_date"
        elif isinstance(f, (models.IntegerField, models.DecimalField)):
            value = "0"
        elif f.choices:
            value = f"'{f.choices[0][0]}'"
        elif isinstance(f, models.CharField):
            value = f"left('{f.column}-' || g, {f.max_length})"
        elif isinstance(f, models.TextField):
            value = f"'{f.column}-' || g"
        else:
            raise AssertionError(f"{model.__name__}.{f.name}: say what to fill it with")
        columns.append(connection.ops.quote_name(f.column))
        values.append(value)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
                       f"SELECT {', '.join(values)} FROM generate_series(1, {ROWS}) g")


def first_id(model: type[models.Model]) -> str:
    return f"(SELECT min(id) FROM {model._meta.db_table}) + g - 1"


@pytest.fixture
def large_tables() -> None:
    job = "md5('job-' || g)::uuid"
    fill(Job, id=job, queue="'lead-processing'", task="'leads.process_lead'", state="'succeeded'",
         idempotency_key="'lead-submission:' || g", payload="jsonb_build_object('submission_id', g)")
    fill(Lead, email="'u' || g || '@ex' || g || '.io'", domain="'ex' || g || '.io'", company="'Company ' || g",
         status="'qualified'")
    fill(LeadSubmission, payload="jsonb_build_object('email', 'u' || g || '@ex' || g || '.io')", status="'qualified'",
         lead_id=first_id(Lead), job_id=job)
    fill(Site, public_id="'site_' || lpad(g::text, 12, '0')", lead_id=first_id(Lead), job_id=job)
    fill(Message, key="'key-' || g", kind="'transactional'", to_email="'u' || g || '@ex' || g || '.io'",
         lead_id=first_id(Lead), job_id=job, provider_message_id="'pm-' || g")
    fill(DeliveryRun, lead_id=first_id(Lead), state="'running'")
    fill(DeliveryStep, run_id=first_id(DeliveryRun), position="1", name="'publish'", state="'done'", job_id=job)
    fill(DeadLetter, id="md5('entry-' || g)::uuid", queue_name="'lead-processing'", job_id=f"({job})::text",
         job_data="'{}'::jsonb")
    with connection.cursor() as cursor:
        for model in (Job, Lead, LeadSubmission, Site, Message, DeliveryRun, DeliveryStep, DeadLetter):
            cursor.execute(f"ANALYZE {model._meta.db_table}")


def queries_of(query: str, user: User) -> tuple[searching.Results, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        results = searching.search(query, user)
    return results, [q["sql"] for q in captured.captured_queries]


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def middle_job_id() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT md5('job-' || {MIDDLE})::uuid")
        return str(cursor.fetchone()[0])


def searches() -> dict[str, str]:
    return {
        "email": f"U{MIDDLE}@EX{MIDDLE}.IO",
        "domain": f"https://www.ex{MIDDLE}.io/about",
        "company": f"company {MIDDLE}",
        "site id": f"site_{MIDDLE:012d}",
        "job id": middle_job_id(),
        "message header": f"<msg-{Message.objects.get(key=f'key-{MIDDLE}').pk}@mail.example>",
        "provider message id": f"pm-{MIDDLE}",
        "lead id": str(Lead.objects.order_by("pk").values_list("pk", flat=True)[MIDDLE - 1]),
    }


def test_every_lookup_uses_an_index_on_a_large_table(large_tables):
    root = User.objects.create_superuser("root", password="x")  # every kind searched
    seq_scans = []
    for what, query in searches().items():
        results, sqls = queries_of(query, root)
        assert results.count, f"the search by {what} ({query}) found nothing"
        for sql in sqls:
            text = plan(sql)
            if "Seq Scan" in text:
                seq_scans.append(f"{what}: {sql}\n{text}")
    assert seq_scans == []


def test_the_number_of_queries_does_not_grow_with_the_tables(large_tables):
    root = User.objects.create_superuser("root", password="x")
    results, big = queries_of(f"u{MIDDLE}@ex{MIDDLE}.io", root)
    # Its lead, and everything of that lead's in the other tables (each has one, naming the same job).
    assert len(results.leads) == len(results.submissions) == len(results.sites) == len(results.messages) == 1
    assert len(results.steps) == len(results.dead_letters) == 1
    assert [str(job.pk) for job in results.jobs] == [middle_job_id()]
    for model in (DeadLetter, DeliveryStep, DeliveryRun, Message, Site, LeadSubmission, Lead, Job):
        model.objects.all().delete()
    jane = Lead.objects.create(email="jane@acme.io", status="qualified")
    LeadSubmission.objects.create(payload={"email": "jane@acme.io"}, lead=jane, job_id=uuid.uuid4())
    _, small = queries_of("jane@acme.io", root)
    # leads, submissions, sites, messages, delivery steps, jobs, dead letters: one query each at most
    assert len(big) == len(small) == 7
