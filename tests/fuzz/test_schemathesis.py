"""Schemathesis against the live web server (hypercorn, the `web` program's command line): requests
generated from GET /api/openapi.json's document, valid and invalid, to every operation, each answer
checked against that same document. The document is as exact as the API: no 5xx, every status code and
content type is one the operation declares, every body and header matches its schema, what the
document refuses is refused and what it allows is accepted.

Bounded and repeatable: at most MAX_EXAMPLES generated requests per operation and mode, derandomized
(the same requests every run), no example database, no timing assertions.
"""
from __future__ import annotations

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, negative_data_rejection, positive_data_acceptance, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from access.auth import create_token
from dlq.models import DeadLetter
from leads.models import WebhookIdempotencyKey
from resilience.openapi import document
from tests.system.test_web_server import SECRET, web_env, web_process  # noqa: F401 - fixtures

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
MAX_EXAMPLES = 25
SEED = 20  # fixed: the same requests every run, so a failure here is this change's, not the dice's
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, positive_data_acceptance]


@pytest.fixture
def live_api(web_process) -> tuple[schemathesis.schemas.BaseSchema, dict[str, str]]:
    url, _ = web_process
    _, secret = create_token("schemathesis")
    DeadLetter.objects.create(queue_name="lead-processing", job_id="job-1", job_data={"email": "a@b.c"},
                              error_message="boom", attempts_made=3)
    schema = schemathesis.openapi.from_dict(document())
    schema.config.update(base_url=url)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    schema.config.seed = SEED
    return schema, {"Authorization": f"Bearer {secret}", "X-Clay-Secret": SECRET}


@pytest.fixture
def api_schema(live_api):
    return live_api[0]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_the_live_api_answers_as_its_document_says(case, live_api):
    _, headers = live_api
    # Each generated request is judged alone: a key the run used before, for another body, is a 422 the
    # document describes, but a sequence's answer, not this request's.
    WebhookIdempotencyKey.objects.all().delete()
    with requests.Session() as session:
        case.call_and_validate(session=session, headers=headers, checks=CHECKS, timeout=30)
