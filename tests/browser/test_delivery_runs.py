"""The worker dashboard's "Delivery runs in progress" in a real headless Chromium: each run at its step,
its attempts and last error written as text, never as HTML."""
from __future__ import annotations

import pytest

from delivery.models import DeliveryStep
from delivery.services import start_delivery
from leads.models import Lead
from sites.services import enqueue_site_generation
from tests.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
HOSTILE_ERROR = '<img src=x onerror="window.__xss=1">SiteNotReady: lead has no site yet'


def test_runs_in_progress_show_their_step_attempts_and_error(page, live_server, staff_user, redis_client):
    waiting = Lead.objects.create(email="waiting@acme.io", status="qualified", score=80)
    retrying = Lead.objects.create(email="retrying@acme.io", status="qualified", score=80)
    for lead in (waiting, retrying):
        enqueue_site_generation(lead)  # as qualifying does: their sites are still to be made
    start_delivery(waiting.pk, by="test")
    run, _ = start_delivery(retrying.pk, by="test")
    DeliveryStep.objects.filter(run=run, position=1).update(state="running", attempts=2, last_error=HOSTILE_ERROR)

    log_in(page, live_server)

    section = page.locator("#wd-deliveries")
    section.wait_for(state="visible")
    assert "2 in progress" in page.locator("#wd-deliveries-caption").inner_text()
    row = page.locator(f'#wd-delivery-runs tr[data-run-id="{run.pk}"]')
    assert row.locator('[data-field="step"]').inner_text() == "1 of 4: Publish the site"
    assert row.locator('[data-field="stepState"]').inner_text() == "running"
    assert row.locator('[data-field="stepAttempts"]').inner_text() == "2"
    assert row.locator(".wd-error").inner_text() == HOSTILE_ERROR
    assert row.locator("a").get_attribute("href") == f"/admin/delivery/deliveryrun/{run.pk}/change/"
    assert page.evaluate("window.__xss") is None
    assert page.js_errors == []
