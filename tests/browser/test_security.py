"""The admin and the dashboard under the Content-Security-Policy, for a staff user who holds only the
view permissions: pages work with no violation, and a change the user may not make is refused with
the permission named on the page."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from dlq.models import DeadLetter
from tests.browser.conftest import STAFF_PASSWORD, STAFF_USERNAME, log_in, screenshot
from workers.ledger import take_due_jobs
from workers.models import Job
from workers.probe import enqueue_probe, run_probe
from workers.runner import run_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user(STAFF_USERNAME, password=STAFF_PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "view_deadletter"]))
    return user


def policy_violations(page) -> list[str]:
    """Chromium reports each refused script, style or connection on the console."""
    found: list[str] = []
    page.on("console", lambda msg: found.append(msg.text) if "Content Security Policy" in msg.text else None)
    return found


def test_a_viewer_sees_the_dashboard_under_the_policy_and_may_not_requeue(live_server, page, viewer, redis_client):
    from playwright.sync_api import expect

    enqueue_probe("delivery", fail="permanent")
    assert [run_job(d.job_id, d.token, worker="delivery@primary.test", handler=run_probe)
            for d in take_due_jobs("delivery", 10)] == ["dead"]
    entry = DeadLetter.objects.get()
    violations = policy_violations(page)

    response = page.goto(f"{live_server.url}/admin/workers/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("#id_username", STAFF_USERNAME)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/workers/")

    # The script ran (it alone fills the figures) and fetched its data under connect-src 'self'.
    expect(page.locator("#wd-overall")).not_to_have_text("…")
    row = page.locator(f'#wd-dead-letters tr[data-entry-id="{entry.id}"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="Requeue").click()
    expect(page.locator("#wd-messages li.error")).to_contain_text("dlq.change_deadletter")
    assert Job.objects.get(pk=entry.job_id).state == "dead"

    page.goto(f"{live_server.url}/admin/dlq/deadletter/{entry.pk}/change/")
    expect(page.locator("#content h1")).to_be_visible()
    screenshot(page, "viewer-under-csp.png")
    assert violations == [] and page.js_errors == []


def test_the_admin_pages_of_a_superuser_raise_no_policy_violation(live_server, page, staff_user):
    from playwright.sync_api import expect

    violations = policy_violations(page)
    log_in(page, live_server, "/admin/")
    for path in ("/admin/", "/admin/dlq/deadletter/", "/admin/workers/job/", "/admin/auth/user/add/",
                 "/admin/axes/accessattempt/", "/admin/workers/"):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#content")).to_be_visible()
    assert violations == [] and page.js_errors == []
