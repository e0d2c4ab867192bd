"""The operator's search box takes any text a person (or a pasted log line) puts in it: an answer, a
400 for what the database cannot hold (a NUL, a lone surrogate: resilience.middleware), never a 500."""
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from leads.models import Lead

QUERIES = st.one_of(
    st.text(max_size=400),
    st.sampled_from(["\x00", "\ud800", "99999999999999999999", "²", "@", "a@", "@b", "<msg-@x>", "site_",
                     "<msg-00000000-0000-0000-0000-000000000000@x>", "https://", "..", "%", "_", "' OR 1=1 --",
                     "00000000-0000-0000-0000-00000000000Z", "x" * 10_000]),
)


@pytest.fixture
def staff(db) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", password="pw-123456789"))
    Lead.objects.create(email="jane@acme.io", company="Acme", domain="acme.io", status="qualified")
    return client


@pytest.mark.django_db
@hypothesis_settings(max_examples=150, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERIES)
def test_the_search_answers_any_text_without_a_server_error(staff, query):
    response = staff.get("/admin/workers/search/?q=" + quote(query, safe="", errors="surrogatepass"))
    assert response.status_code in (200, 400), (query, response.status_code)
