"""The project's answer to an exception no view handled (handler500): an outage of the database is a
503 with Retry-After, in JSON under /api/ and in plain text elsewhere; anything else stays a 500."""
from __future__ import annotations

import json

import pytest
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from resilience.http import api_server_error


def answer_while_raising(exception: Exception, path: str):
    # Django calls handler500 inside its except block; so does this.
    try:
        raise exception
    except Exception:
        return api_server_error(RequestFactory().get(path))


@pytest.mark.parametrize("exception", [OperationalError("could not connect to server: Connection refused"),
                                       InterfaceError("connection already closed")])
def test_a_database_out_of_reach_is_a_503_with_retry_after(exception):
    api = answer_while_raising(exception, "/api/admin/workers/health")
    assert (api.status_code, api["Retry-After"], api["Content-Type"]) == (503, "5", "application/json")
    assert json.loads(api.content)["error"] == "the database is unavailable; nothing was stored, try again in 5 s"
    page = answer_while_raising(exception, "/admin/leads/lead/")
    assert (page.status_code, page["Retry-After"]) == (503, "5")
    assert page["Content-Type"].startswith("text/plain") and b"database is unavailable" in page.content


def test_any_other_exception_stays_a_500_that_names_nothing():
    api = answer_while_raising(ValueError("secret detail"), "/api/webhooks/clay")
    assert api.status_code == 500 and not api.has_header("Retry-After")
    assert json.loads(api.content)["error"] == "internal error; it has been logged"
