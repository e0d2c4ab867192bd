"""The worker dashboard (/admin/workers/) in a real headless Chromium, against a live server.

Given ledger jobs run through the real runner, heartbeat rows and dead-letter entries, the page must
show what health_report() says, refresh itself without reloading, requeue a dead-letter entry
through the admin API, and say so when it cannot refresh.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dlq.models import DeadLetter
from tests.browser.conftest import log_in, screenshot
from workers.errors import InvalidData, PermanentError
from monitoring.health import health_report
from workers.ledger import take_due_jobs
from workers.models import Job, JobFailure, QueuePause, WorkerHeartbeat
from workers.probe import enqueue_probe, run_probe
from workers.runner import run_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REFRESH_WAIT_MS = 15_000  # the page refreshes every 10 s
HOSTILE_ERROR = '<img src=x onerror="window.__xss=1">ValueError: <b>bold</b> & more'


def run_due(queue: str, handler=run_probe) -> list[str]:
    return [run_job(d.job_id, d.token, worker=f"{queue}@primary.test", handler=handler)
            for d in take_due_jobs(queue, 100)]


def broken_site_api(job: Job) -> None:
    raise PermanentError("SITE_API_KEY is not set")


def invalid_lead(job: Job) -> None:
    raise InvalidData("email 'jane@' has no valid domain")


def beat(name: str, pool: str, queue: str, *, state: str = "live", memory: int = 0, done: int = 0,
         failed: int = 0, rejected: int = 0) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        name=name, pool=pool, queue=queue, host="test-host", pid=4000 + WorkerHeartbeat.objects.count(),
        concurrency=2, started_at=now - timedelta(hours=1),
        beat_at=now - (timedelta(minutes=10) if state == "gone" else timedelta(seconds=5)),
        expires_at=now + timedelta(hours=1) if state == "live" else now - timedelta(minutes=9),
        stopped_at=now - timedelta(minutes=2) if state == "stopped" else None,
        jobs_done=done, jobs_failed=failed, jobs_rejected=rejected, memory_bytes=memory,
        last_job_at=now - timedelta(seconds=30),
    )


@pytest.fixture
def ledger_world(redis_client):
    """Every status at once: lead-processing healthy (one lead rejected for its input),
    site-generation unhealthy (2 of 20 jobs dead-lettered), email-sending degraded (3 recent errors),
    delivery paused on purpose; a live dispatcher leader."""
    for _ in range(3):
        enqueue_probe("lead-processing")
    assert run_due("lead-processing") == ["succeeded"] * 3
    enqueue_probe("lead-processing")
    assert run_due("lead-processing", handler=invalid_lead) == ["dead"]  # rejected, not failed
    enqueue_probe("lead-processing")  # left waiting

    for _ in range(18):
        enqueue_probe("site-generation")
    assert run_due("site-generation") == ["succeeded"] * 18
    broken = enqueue_probe("site-generation")
    enqueue_probe("site-generation")
    assert run_due("site-generation", handler=broken_site_api) == ["dead"] * 2

    for _ in range(20):
        enqueue_probe("email-sending")
    assert run_due("email-sending") == ["succeeded"] * 20
    done = Job.objects.filter(queue="email-sending").first()
    for attempt in (1, 2, 3):  # attempts that failed before later ones succeeded
        JobFailure.objects.create(job=done, queue="email-sending", attempt=attempt, error="ConnectionError: SMTP reset")

    enqueue_probe("delivery", fail="permanent")
    assert run_due("delivery") == ["dead"]
    QueuePause.objects.create(queue="delivery", reason="maintenance window", paused_by="ops")

    for queue in ("site-generation", "email-sending", "delivery"):
        beat(f"{queue}@primary.test-host", "primary", queue, memory=187 * 1024 * 1024 + 512 * 1024, done=12, failed=1)
    # The worker that ran the invalid lead: rejected, not failed, as the queue says.
    beat("lead-processing@primary.test-host", "primary", "lead-processing", memory=187 * 1024 * 1024 + 512 * 1024,
         done=12, rejected=1)
    beat("lead-processing@backup.test-host", "backup", "lead-processing", memory=3 * 1024 ** 3)
    beat("site-generation@backup.test-host", "backup", "site-generation", state="gone")
    beat("email-sending@backup.test-host", "backup", "email-sending", state="stopped")
    beat("dispatcher@test-host", WorkerHeartbeat.DISPATCHER_POOL, "")

    hostile = DeadLetter.objects.create(queue_name="email-sending", job_id="outside-the-ledger",
                                        job_data={"to": "x@example.com"}, error_message=HOSTILE_ERROR,
                                        attempts_made=3)
    return {"broken": broken, "hostile": hostile}


def queue_cell(page, queue: str, field: str):
    return page.locator(f'#wd-queues tr[data-queue="{queue}"] [data-field="{field}"]')


def entry_row(page, entry_id):
    return page.locator(f'#wd-dead-letters tr[data-entry-id="{entry_id}"]')


def expect_queue_figures(page, report: dict) -> None:
    from playwright.sync_api import expect

    for q in report["workers"]:
        expect(queue_cell(page, q["name"], "status")).to_have_text(q["status"])
        for field in ("waiting", "active", "completed", "failed", "rejected", "consumers"):
            expect(queue_cell(page, q["name"], field)).to_have_text(str(q[field]))
        expect(queue_cell(page, q["name"], "failureRate")).to_have_text(f"{q['failureRate']:.2f} %")
        expect(queue_cell(page, q["name"], "recentErrors")).to_have_text(str(q["recent"]["errors"]))
        expect(queue_cell(page, q["name"], "recentFailureRate")).to_have_text(f"{q['recent']['failureRate']:.2f} %")
        for reason in q["reasons"]:
            expect(queue_cell(page, q["name"], "reasons")).to_contain_text(reason)


def test_anonymous_visitor_lands_on_the_admin_login_page(live_server, page):
    from playwright.sync_api import expect

    for path in ("/admin/workers/", "/admin/workers/data"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_url("**/admin/login/**")
        assert f"next={path}" in page.url.replace("%2F", "/")
        expect(page.locator("#id_username")).to_be_visible()
        expect(page.locator("#wd-queues")).to_have_count(0)


def test_dashboard_shows_what_health_report_says(live_server, page, staff_user, ledger_world, settings):
    from playwright.sync_api import expect

    settings.FLOWER_PORT = 5999
    try:
        log_in(page, live_server, "/admin/")
        link = page.get_by_role("link", name="Worker dashboard")
        expect(link).to_be_visible()
        screenshot(page, "admin-home.png")
        link.click()
        page.wait_for_url("**/admin/workers/")
        expect(page.locator(".breadcrumbs")).to_contain_text("Worker dashboard")

        report = health_report()
        statuses = {q["name"]: q["status"] for q in report["workers"]}
        assert statuses == {"lead-processing": "healthy", "site-generation": "unhealthy",
                            "email-sending": "degraded", "delivery": "paused"}
        expect(page.locator("#wd-overall")).to_have_text(report["overall"])
        expect_queue_figures(page, report)
        expect(queue_cell(page, "delivery", "reasons")).to_contain_text("maintenance window")

        # Both pools' workers: state, heartbeat age, memory in human units, jobs done/failed.
        workers = page.locator("#wd-workers tbody tr")
        expect(workers).to_have_count(8)  # and the dispatcher leader's row
        expect(page.locator('[data-field="dispatcherLeader"] dd')).to_have_text("dispatcher@test-host")
        # 5 live of the 7 worker rows (one gone, one stopped); the dispatcher's row is not a worker's.
        expect(page.locator('[data-field="liveWorkers"] dd')).to_have_text("5 of 7")
        expect(page.locator('[data-field="totalRejected"] dd')).to_have_text("1")
        expect(page.locator("#wd-overall-reasons")).to_be_hidden()
        primary = page.locator('#wd-workers tr[data-worker="lead-processing@primary.test-host"]')
        expect(primary.locator('[data-field="state"]')).to_have_text("live")
        expect(primary.locator('[data-field="memory"]')).to_have_text("187.5 MiB")
        expect(primary.locator('[data-field="jobsDone"]')).to_have_text("12")
        # Issue 20: the invalid lead is rejected in the workers table too, in no warning colour.
        expect(queue_cell(page, "lead-processing", "failed")).to_have_text("0")
        expect(queue_cell(page, "lead-processing", "rejected")).to_have_text("1")
        expect(primary.locator('[data-field="jobsFailed"]')).to_have_text("0")
        rejected = primary.locator('[data-field="jobsRejected"]')
        expect(rejected).to_have_text("1")
        expect(rejected).not_to_have_class(re.compile(r"wd-(warn|bad)"))
        colour = "el => getComputedStyle(el).color"
        failed_elsewhere = page.locator('#wd-workers tr[data-worker="site-generation@primary.test-host"] '
                                        '[data-field="jobsFailed"]')
        expect(failed_elsewhere).to_have_text("1")
        assert rejected.evaluate(colour) == queue_cell(page, "lead-processing", "rejected").evaluate(colour)
        assert rejected.evaluate(colour) != failed_elsewhere.evaluate(colour)
        expect(primary.locator('[data-field="heartbeatAge"]')).to_have_text(re.compile(r"^\d+ s$"))
        backup = page.locator('#wd-workers tr[data-worker="lead-processing@backup.test-host"]')
        expect(backup.locator('[data-field="memory"]')).to_have_text("3.00 GiB")
        expect(page.locator('#wd-workers tr[data-worker="site-generation@backup.test-host"] [data-field="state"]'))\
            .to_have_text("gone")
        expect(page.locator('#wd-workers tr[data-worker="site-generation@backup.test-host"] [data-field="heartbeatAge"]'))\
            .to_have_text(re.compile(r"^10 min \d+ s$"))
        expect(page.locator('#wd-workers tr[data-worker="email-sending@backup.test-host"] [data-field="state"]'))\
            .to_have_text("stopped")

        # The unresolved dead-letter entries, newest first, each linking to its admin page.
        entries = list(DeadLetter.objects.filter(resolved=False).order_by("-failed_at"))
        assert len(entries) == 5
        rows = page.locator("#wd-dead-letters tbody tr")
        expect(rows).to_have_count(5)
        for index, entry in enumerate(entries):
            expect(rows.nth(index)).to_have_attribute("data-entry-id", str(entry.id))
            expect(rows.nth(index).locator("a.wd-details")).to_have_attribute(
                "href", f"/admin/dlq/deadletter/{entry.id}/change/")
        expect(page.locator("#wd-dlq-caption")).to_contain_text("5 unresolved")
        # Data is text, never markup.
        hostile = entry_row(page, ledger_world["hostile"].id).locator('[data-field="error"]')
        expect(hostile).to_have_text(HOSTILE_ERROR)
        assert page.evaluate("window.__xss") is None
        assert page.locator("#wd-dead-letters img, #wd-dead-letters b").count() == 0

        expect(page.locator("#wd-flower")).to_have_attribute("href", re.compile(r"^http://localhost:5999/$"))
        expect(page.locator("#wd-updated")).to_contain_text("Updated")

        entry_row(page, ledger_world["hostile"].id).locator("a.wd-details").click()
        page.wait_for_url(f"**/admin/dlq/deadletter/{ledger_world['hostile'].id}/change/")
        expect(page.locator("body")).to_contain_text("outside-the-ledger")
        page.go_back()
        page.wait_for_url("**/admin/workers/")
        expect(page.locator("#wd-overall")).to_have_text(report["overall"])
        assert page.js_errors == []
    finally:
        screenshot(page, "dashboard.png")


def test_dashboard_refreshes_itself_without_reloading(live_server, page, staff_user, redis_client):
    from playwright.sync_api import expect

    enqueue_probe("lead-processing")
    run_due("lead-processing")
    log_in(page, live_server)
    expect(queue_cell(page, "lead-processing", "completed")).to_have_text("1")
    # No dispatcher runs here: the whole system is unhealthy, and the page says why.
    expect(page.locator("#wd-overall")).to_have_text("unhealthy")
    expect(page.locator("#wd-overall-reasons")).to_contain_text("no live dispatcher leader")
    first_update = page.locator("#content-main").get_attribute("data-generated-at")
    page.evaluate("window.__marker = 1")

    for _ in range(4):
        enqueue_probe("lead-processing")
    run_due("lead-processing")
    enqueue_probe("lead-processing")  # and one waiting

    expect(queue_cell(page, "lead-processing", "completed")).to_have_text("5", timeout=REFRESH_WAIT_MS)
    expect(queue_cell(page, "lead-processing", "waiting")).to_have_text("1")
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of refreshing its figures"
    assert page.locator("#content-main").get_attribute("data-generated-at") != first_update
    assert page.js_errors == []


def test_requeue_from_the_dashboard(live_server, page, staff_user, redis_client):
    from playwright.sync_api import expect

    job = enqueue_probe("site-generation")
    assert run_due("site-generation", handler=broken_site_api) == ["dead"]
    entry = DeadLetter.objects.get(job_id=str(job.id))
    other = enqueue_probe("site-generation")
    assert run_due("site-generation", handler=broken_site_api) == ["dead"]
    other_entry = DeadLetter.objects.get(job_id=str(other.id))
    try:
        log_in(page, live_server)
        expect(queue_cell(page, "site-generation", "failed")).to_have_text("2")
        expect(entry_row(page, entry.id)).to_have_count(1)

        # Somebody resolves an entry while the page still shows it: the API refuses, the page says why.
        DeadLetter.objects.filter(pk=other_entry.pk).update(resolved=True, resolved_by="someone else")
        entry_row(page, other_entry.id).get_by_role("button", name="Requeue").click()
        expect(page.locator("#wd-messages li.error")).to_contain_text(
            re.compile(rf"Could not requeue the site-generation entry {str(other_entry.id)[:8]}.*already resolved"))
        expect(entry_row(page, other_entry.id)).to_have_count(0)  # gone at the next refresh

        # The fix is in: requeue the job from the dashboard.
        entry_row(page, entry.id).get_by_role("button", name="Requeue").click()
        expect(page.locator("#wd-messages li.success")).to_contain_text(str(job.id))
        expect(entry_row(page, entry.id)).to_have_count(0)
        entry.refresh_from_db()
        assert entry.resolved
        job.refresh_from_db()
        assert (job.state, job.attempts) == ("pending", 0)
        expect(queue_cell(page, "site-generation", "waiting")).to_have_text("1")
        expect(queue_cell(page, "site-generation", "failed")).to_have_text("1")

        assert run_due("site-generation") == ["succeeded"]
        expect(queue_cell(page, "site-generation", "completed")).to_have_text("1", timeout=REFRESH_WAIT_MS)
        expect(queue_cell(page, "site-generation", "waiting")).to_have_text("0")
        assert page.js_errors == []
    finally:
        screenshot(page, "dashboard-requeue.png")


def test_dashboard_says_when_it_cannot_refresh_and_keeps_trying(live_server, page, context, staff_user,
                                                                redis_client, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setattr("monitoring.dashboard.REFRESH_SECONDS", 2)  # three rounds below, not 30 s of waiting
    log_in(page, live_server)
    expect(page.locator("#wd-overall")).to_have_text(re.compile(r"\w+"))
    banner = page.locator("#wd-banner")
    expect(banner).to_be_hidden()

    # The server cannot be reached.
    page.route("**/admin/workers/data", lambda route: route.abort("connectionrefused"))
    expect(banner).to_be_visible(timeout=REFRESH_WAIT_MS)
    expect(banner).to_contain_text("cannot be reached")
    expect(banner).to_contain_text("Trying again every 2 s")
    page.unroute("**/admin/workers/data")
    expect(banner).to_be_hidden(timeout=REFRESH_WAIT_MS)

    # The session ends (logged out elsewhere): the data URL now redirects to the login page.
    context.clear_cookies()
    expect(banner).to_be_visible(timeout=REFRESH_WAIT_MS)
    expect(banner).to_contain_text("session has expired")
    expect(banner.get_by_role("link", name="Log in again")).to_have_attribute("href", re.compile(r"^/admin/login/"))
    screenshot(page, "dashboard-banner.png")
    assert page.js_errors == []


# Each table's width and its box's (the .wd-scroll around it, which scrolls what does not fit, so an
# overflow is cut off rather than seen), and the page's against the viewport.
TABLE_WIDTHS_JS = """() => ({
  page: document.documentElement.scrollWidth,
  tables: Array.from(document.querySelectorAll(".wd-table")).map(t => ({
    id: t.id, table: t.getBoundingClientRect().width, scroll: t.parentElement.scrollWidth,
    box: t.parentElement.clientWidth,
  })),
})"""


def test_every_table_fits_its_box_at_1400_px_and_the_budget_reason_is_readable(
        live_server, browser, staff_user, ledger_world, settings):
    from decimal import Decimal

    from playwright.sync_api import expect

    from sites import budget
    from tests.sites.conftest import paid_request

    # Given the day's AI budget spent: site-generation pauses itself, with its long reason.
    settings.AI_DAILY_BUDGET_USD = Decimal("0.001")
    paid_request(cost="0.001125")
    assert budget.enforce_daily_budget() == "paused"
    reason = QueuePause.objects.get(queue="site-generation").reason
    assert reason.startswith("budget:") and len(reason) > 100

    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        log_in(page, live_server)
        cell = queue_cell(page, "site-generation", "reasons")
        expect(cell).to_contain_text(reason)
        widths = page.evaluate(TABLE_WIDTHS_JS)
        assert widths["page"] <= 1400, widths
        for table in widths["tables"]:
            if table["box"]:  # a hidden section has no box
                assert table["table"] <= table["box"] + 0.5 and table["scroll"] <= table["box"], table
        # The whole reason lies inside the box, not past its right edge.
        box = page.locator("#wd-queues").locator("xpath=..").bounding_box()
        text = cell.locator("li").first.bounding_box()
        assert box["x"] <= text["x"] and text["x"] + text["width"] <= box["x"] + box["width"] + 0.5, (box, text)
        expect(cell.locator("li").first).to_be_in_viewport()
        assert errors == []
    finally:
        screenshot(page, "dashboard-1400.png")
        context.close()
