"""Schemathesis against the live web server (hypercorn, the `web` program's command line): requests
generated from GET /api/openapi.json's document, valid and invalid, to every operation, each answer
checked against that same document. The document is as exact as the API: no 5xx, every status code and
content type is one the operation declares, every body and header matches its schema, what the
document refuses is refused and what it allows is accepted.

Bounded and repeatable: at most MAX_EXAMPLES generated requests per operation and mode, derandomized
(the same requests every run), no example database, no timing assertions.
"""
from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection, positive_data_acceptance, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from access.auth import create_token
from access.models import Scope
from delivery.services import start_delivery
from dlq.models import DeadLetter
from leads.models import Lead, WebhookIdempotencyKey
from resilience.openapi import document
from sites.models import Site
from tests.system.test_web_server import SECRET, web_env, web_process  # noqa: F401 - fixtures

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
MAX_EXAMPLES = 25
ENTRY_ID = uuid.UUID("5e5e5e5e-0000-4000-8000-000000000020")
SEED = 20  # fixed: the same requests every run, so a failure here is this change's, not the dice's
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, positive_data_acceptance]


@pytest.fixture
def live_api(web_process) -> tuple[schemathesis.schemas.BaseSchema, dict[str, str]]:
    url, _ = web_process
    _, secret = create_token("schemathesis", scopes=Scope.values)  # every operation, not only the reads
    schema = schemathesis.openapi.from_dict(document())
    schema.config.update(base_url=url)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    schema.config.seed = SEED
    return schema, {"Authorization": f"Bearer {secret}", "X-Clay-Secret": SECRET}


@pytest.fixture
def api_schema(live_api):
    return live_api[0]


def lead_with_site(email: str) -> Lead:
    lead, created = Lead.objects.get_or_create(email=email, defaults={"company": "Acme", "status": "qualified",
                                                                      "score": 80})
    if created:
        Site.objects.create(lead=lead, job_id=uuid.uuid4(), design="bold", content={}, html="<p>site</p>",
                            model="claude-3-haiku-20240307", cost_usd=0)
    return lead


def aim_at_records(case: schemathesis.Case) -> None:
    """Valid requests name records that exist (a valid id is still valid), so that the answers with a body
    (200, 201, 409) are given, and checked, too: generated ids alone would find nothing. The dead-letter
    entry is made again once a generated DELETE took it; GET reads a lead's delivery run, POST starts
    another lead's (201, then 200)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    entry, _ = DeadLetter.objects.get_or_create(id=ENTRY_ID, defaults={
        "queue_name": "lead-processing", "job_id": "job-1", "job_data": {"email": "a@b.c"}, "error_message": "boom",
        "attempts_made": 3})
    if isinstance(case.body, dict) and "id" in case.body:
        case.body["id"] = str(entry.id)
    if case.query and "id" in case.query:
        case.query["id"] = str(entry.id)
    if case.path_parameters and "lead_id" in case.path_parameters:
        if case.method == "GET":
            lead = lead_with_site("delivered@acme.io")
            start_delivery(lead.pk, by="schemathesis")
        else:
            lead = lead_with_site("won@acme.io")
        case.path_parameters["lead_id"] = lead.pk


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_the_live_api_answers_as_its_document_says(case, live_api):
    _, headers = live_api
    # Each generated request is judged alone: a key the run used before, for another body, is a 422 the
    # document describes, but a sequence's answer, not this request's.
    WebhookIdempotencyKey.objects.all().delete()
    aim_at_records(case)
    with requests.Session() as session:
        case.call_and_validate(session=session, headers=headers, checks=CHECKS, timeout=30)
