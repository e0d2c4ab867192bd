"""POST /api/webhooks/clay with what PostgreSQL refuses: a 400 naming the lead and the field, never
a 500, and nothing stored. Bodies are written by hand (json.dumps would refuse or escape them)."""
import json

import pytest

from leads.models import Lead, LeadSubmission
from leads.services import normalize_lead
from workers.models import Job

URL = "/api/webhooks/clay"
SECRET = "test-clay-secret"


def post_raw(client, raw: bytes | str, **headers):
    return client.post(URL, data=raw, content_type="application/json", HTTP_X_CLAY_SECRET=SECRET, **headers)


def assert_nothing_stored():
    assert not LeadSubmission.objects.exists() and not Job.objects.exists() and not Lead.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw, index, field, fragment",
    [
        # NUL in a known field, an unknown field, a key
        (r'[{"email": "a@acme.io"}, {"email": "b@acme.io", "company": "Ac\u0000me"}]', 1, "company", "NUL"),
        (r'[{"email": "a@acme.io", "notes": "x\u0000"}]', 0, "notes", "NUL"),
        (r'{"email": "a@acme.io", "no\u0000tes": "x"}', 0, r"no\u0000tes", "NUL"),
        # a lone surrogate, escaped, in a field, nested, and in a key
        (r'[{"email": "a@acme.io"}, {"email": "b@acme.io", "title": "\ud800"}]', 1, "title", "surrogate"),
        (r'[{"email": "a@acme.io", "extra": {"deep": ["ok", "\udfff"]}}]', 0, "extra.deep[1]", "surrogate"),
        (r'[{"email": "a@acme.io", "\ud800": 1}]', 0, r"\ud800", "surrogate"),
        # numbers the validator does not check, and jsonb cannot hold
        (r'[{"email": "a@acme.io", "score": NaN}]', 0, "score", "finite"),
        (r'[{"email": "a@acme.io"}, {"email": "b@acme.io", "x": [-Infinity]}]', 1, "x[0]", "finite"),
        (r'{"email": "a@acme.io", "revenue": 1e400}', 0, "revenue", "finite"),
    ],
)
def test_values_postgres_refuses_are_400_naming_lead_and_field(client, raw, index, field, fragment):
    response = post_raw(client, raw)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False and "nothing was stored" in body["error"]
    [error] = body["errors"]
    assert error["index"] == index and error["field"] == field and fragment in error["message"]
    assert_nothing_stored()


@pytest.mark.django_db
def test_raw_surrogate_bytes_are_not_utf8_and_a_400(client):
    response = post_raw(client, b'[{"email": "a@acme.io", "title": "\xed\xa0\x80"}]')
    assert response.status_code == 400
    assert "not UTF-8 at byte 34" in response.json()["error"]
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_nesting_is_400(client, depth):
    raw = '[{"email": "a@acme.io", "x": ' + "[" * depth + "]" * depth + "}]"
    response = post_raw(client, raw)
    assert response.status_code == 400
    assert "nested too deeply (at most 32 levels)" in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_employee_count_beyond_the_column_is_400(client):
    response = post_raw(client, '[{"email": "a@acme.io", "employee_count": 2147483648}]')
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 0, "field": "employee_count", "message": "must be at most 2147483647"}]
    assert_nothing_stored()


@pytest.mark.django_db
def test_what_postgres_can_store_is_still_accepted(client):
    raw = ('[{"email": "a@acme.io", "employee_count": 2147483647, "emoji": "\\ud83d\\ude00", "ratio": 1e300, '
           '"nested": ' + "[" * 30 + "]" * 30 + "}]")
    response = post_raw(client, "\ufeff" + raw)  # a leading BOM is allowed
    assert response.status_code == 202, response.content
    assert LeadSubmission.objects.get().payload["emoji"] == "\U0001F600"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["AAA", "about fifty", "51-", "1234567890", "-5", "5O"])
def test_an_employee_count_that_is_no_count_is_400_naming_the_field(client, value):
    response = post_raw(client, json.dumps([{"email": "a@acme.io", "employees": value}]))
    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (0, "employees") and "51-200" in error["message"]
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize("value, stored", [(120, 120), (120.0, 120), ("1,200", 1200), ("51-200", 51),
                                           ("1,001-5,000 employees", 1001), ("10,001+", 10001), ("", None),
                                           (None, None)])
def test_a_count_or_a_band_is_accepted(client, value, stored):
    response = post_raw(client, json.dumps({"email": "a@acme.io", "employee_count": value}))
    assert response.status_code == 202, response.content
    assert normalize_lead(LeadSubmission.objects.get().payload).employee_count == stored


@pytest.mark.django_db
def test_every_name_of_a_field_is_checked_not_only_the_first_present(client):
    response = post_raw(client, json.dumps([{"email": "a@acme.io", "first_name": "Ada", "firstName": 7}]))
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"index": 0, "field": "firstName", "message": "must be a string, got a number"}]
