"""A generated site opened in Chromium: it renders, runs no script (there is none, and the policy
would refuse one), and the admin lists it with its cost and a preview link."""
from __future__ import annotations

from decimal import Decimal

import pytest

from leads.models import Lead
from sites.models import Site
from sites.services import SITE_QUEUE, enqueue_site_generation
from sites.tasks import generate_site
from tests.browser.conftest import log_in, screenshot
from tests.sites.conftest import paid_request
from workers import ledger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def generated_site(settings) -> Site:
    settings.MOCK_MODE = True
    lead = Lead.objects.create(email="ceo@acme.io", first_name="Jane", title="CEO", company=f"Acme {HOSTILE}",
                               industry="logistics", score=90, status="qualified")
    enqueue_site_generation(lead)
    assert [generate_site.run(d.job_id, d.token) for d in ledger.take_due_jobs(SITE_QUEUE, 10)] == ["succeeded"]
    return Site.objects.get()


def test_a_generated_site_renders_with_no_script_under_its_policy(live_server, page, settings):
    from playwright.sync_api import expect

    site = generated_site(settings)
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    response = page.goto(f"{live_server.url}/sites/{site.public_id}/")
    assert response.status == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    expect(page.locator("h1")).to_contain_text("Acme <script>window.pwned = 1</script>")  # shown as text
    assert page.evaluate("document.scripts.length") == 0 and page.evaluate("typeof window.pwned") == "undefined"
    assert page.evaluate("document.images.length") == 0
    # The inline style applied (the palette's background), under style-src 'unsafe-inline'.
    background = site.content["palette"]["background"]
    rgb = tuple(int(background[i:i + 2], 16) for i in (1, 3, 5))
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(%d, %d, %d)" % rgb
    screenshot(page, f"site-{site.design}.png")
    assert violations == [] and page.js_errors == []


def test_the_policy_refuses_a_script_even_if_one_got_into_a_site(live_server, page):
    site = Site.objects.create(job_id="00000000-0000-0000-0000-000000000001", design="bold", content={},
                               html="<!DOCTYPE html><h1>x</h1><script>window.ran = true</script>",
                               model="claude-3-haiku-20240307", cost_usd=Decimal("0"))
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(f"{live_server.url}/sites/{site.public_id}/")
    assert page.evaluate("typeof window.ran") == "undefined"
    assert violations, "Chromium should report the refused inline script"


def test_the_admin_lists_sites_with_their_cost_and_a_preview(live_server, page, staff_user, settings):
    from playwright.sync_api import expect

    site = generated_site(settings)
    log_in(page, live_server, "/admin/sites/site/")
    # MOCK_MODE's made-up request is not spend: the books above the list leave it out.
    expect(page.locator("#site-spend")).to_contain_text("No paid request yet.")
    paid_request(site=site)  # as a real request would have been booked
    page.reload()
    expect(page.locator("#site-spend")).to_contain_text("claude-3-haiku-20240307")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text(site.public_id)
    with page.context.expect_page() as opened:
        row.get_by_role("link", name=f"/sites/{site.public_id}/").click()
    preview = opened.value
    preview.wait_for_load_state()
    expect(preview.locator("h1")).to_be_visible()
    screenshot(page, "admin-sites.png")


def test_the_call_to_action_is_clicked_through_to_the_booking_page(live_server, page, settings):
    site = generated_site(settings)
    settings.SITE_BOOKING_URL = f"{live_server.url}/healthz"  # a page of ours: the run stays on loopback
    page.goto(f"{live_server.url}/sites/{site.public_id}/")
    page.get_by_role("link", name="Book a call").click()
    page.wait_for_url(f"{live_server.url}/healthz")
    site.refresh_from_db()
    assert site.cta_clicks == 1
