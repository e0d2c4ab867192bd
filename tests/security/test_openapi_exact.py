"""The document and the code agree value for value: what the OpenAPI document's schemas allow, the
views' own checks allow, and what they refuse, the checks refuse (a JSON Schema validator on one side,
the view's check function on the other, on the same generated values). tests/fuzz/test_schemathesis.py
then holds the live server to the same document."""
from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from leads.fields import ALIASES
from leads.idempotency import check_key
from leads.validation import validate_item
from resilience.openapi import document

EXAMPLES = hypothesis_settings(max_examples=400, deadline=None, database=None, derandomize=True)


def validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """`schema` with the document's components beside it, so that its references resolve."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": document()["components"]})


def webhook() -> dict[str, Any]:
    return document()["paths"]["/api/webhooks/clay"]["post"]


LEAD = webhook()["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
KEY = next(p for p in webhook()["parameters"] if p["name"] == "Idempotency-Key")["schema"]

names = st.sampled_from([name for aliases in ALIASES.values() for name in aliases] + ["notes", "tags"])
counts = st.one_of(
    st.integers(-5, 3_000_000_000), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
    st.sampled_from(["51-200", "1,001-5,000", "10,001+", "10,001+ employees", "1,200", " 50 ", "", "  ", "AAA",
                     "51 to 200", "51\u2013200", "1234567890", "1,2", "51-", "-5", "50\n", "\u0665\u0660"]),
    st.text(alphabet="0123456789,-+ eEmployto\u2013", max_size=12),
)
texts = st.one_of(st.text(max_size=8), st.text(max_size=300), st.sampled_from([" ", "\u3000", "\x1c", "\ufeff", "a\x00"]))
values = st.one_of(st.none(), st.booleans(), st.integers(), texts, counts, st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
leads = st.dictionaries(names, values, max_size=6)


@EXAMPLES
@given(item=leads)
def test_a_lead_is_valid_in_the_document_exactly_when_the_webhook_accepts_it(item):
    accepted = not validate_item(item, 0)
    assert validator(LEAD).is_valid(item) == accepted, (item, validate_item(item, 0))


@EXAMPLES
@given(key=st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(max_codepoint=0x80), max_size=12),
                     st.sampled_from(["", " ", "  a  ", "x" * 255, "x" * 256, "line\n", "tab\there", "\x7f"])))
def test_an_idempotency_key_is_valid_in_the_document_exactly_when_the_webhook_takes_it(key):
    assert validator(KEY).is_valid(key) == (check_key(key) is None), (key, check_key(key))


@pytest.mark.django_db
def test_a_dead_letter_list_limit_is_valid_exactly_when_the_view_takes_it(client, django_user_model):
    staff = django_user_model.objects.create_superuser("ops", password="x")
    client.force_login(staff)
    limit = next(p for p in document()["paths"]["/api/admin/dead-letter-queue"]["get"]["parameters"]
                 if p["name"] == "limit")["schema"]
    for raw in ["0", "1", "1000", "1001", "-1", "ten", "", " 5", "1_0", "\u0665", "5.0"]:
        # A query value is text: the document's integer is a decimal whole number written out.
        as_integer = int(raw) if raw.lstrip("+-").isascii() and raw.lstrip("+-").isdigit() else raw
        answered = client.get("/api/admin/dead-letter-queue", {"limit": raw}).status_code
        assert (answered == 200) == validator(limit).is_valid(as_integer), (raw, answered)


def test_the_document_is_valid_openapi_3_1():
    """Against the OpenAPI 3.1 meta-schema Schemathesis ships (openapi-spec-validator is not a requirement),
    as served: JSON, not the Python dict."""
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    served = json.loads(json.dumps(document()))
    assert not [error.message for error in OPENAPI_31_VALIDATOR.iter_errors(served)]
    assert not OPENAPI_31_VALIDATOR.is_valid({**served, "paths": {"/x": {"get": {"responses": {"200": {}}}}}})
