"""The browser's /favicon.ico on every page view is answered, not a 404 that Django logs as a WARNING."""
import logging

import pytest


@pytest.mark.django_db
def test_the_favicon_is_served_and_logs_no_warning(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg") and "max-age" in response["Cache-Control"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_only_get_is_answered(client):
    assert client.post("/favicon.ico").status_code == 405
