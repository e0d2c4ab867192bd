"""The dashboard's charts in a real headless Chromium, against a live server: after real jobs ran
through the runner and a paid AI request was recorded, the page's own script draws one SVG per queue
with a 360-point line (a point a minute over 6 hours) for each of started / succeeded / failed /
rejected, the waits' p50/p95 and a bar per hour of AI spend, with no Content-Security-Policy violation."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db.models.functions import Now

from tests.browser.conftest import STAFF_PASSWORD, STAFF_USERNAME, log_in, screenshot
from tests.browser.test_security import policy_violations
from tests.sites.conftest import paid_request
from workers import ledger
from workers.errors import InvalidData
from workers.models import Job
from workers.runner import run_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def viewer(django_user_model):
    """The dashboard's permissions and no other: the charts need no more."""
    user = django_user_model.objects.create_user(STAFF_USERNAME, password=STAFF_PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "view_deadletter"]))
    return user


def run_one(queue: str, handler, *, created_ago: float = 0.0) -> str:
    job = ledger.enqueue(queue, "test.task", {})
    if created_ago:
        Job.objects.filter(pk=job.pk).update(created_at=Now() - timedelta(seconds=created_ago))
    [d] = ledger.take_due_jobs(queue, 1)
    return run_job(d.job_id, d.token, worker=f"{queue}@primary.test", handler=handler)


def refuse(job):
    raise InvalidData("email: not an address")


def test_the_charts_draw_every_queue_s_minutes_and_the_spend_under_the_policy(live_server, page, viewer,
                                                                                redis_client):
    from playwright.sync_api import expect

    # Waits well inside their buckets ((5, 10] s and (30, 60] s): the start itself may come late on a
    # loaded machine, and the bucket must not depend on it.
    for ago in (5.5, 5.5, 40.0):
        assert run_one("delivery", lambda job: None, created_ago=ago) == "succeeded"
    assert run_one("lead-processing", refuse) == "dead"
    paid_request(cost="0.125")
    violations = policy_violations(page)

    log_in(page, live_server)
    queues = page.locator("#wd-charts-queues svg.wd-chart")
    expect(queues).to_have_count(4)
    lines = page.locator("#wd-charts-queues polyline")
    expect(lines).to_have_count(4 * 4)
    points = lines.evaluate_all("nodes => nodes.map(n => n.getAttribute('points').trim().split(/\\s+/).length)")
    assert points == [360] * 16

    delivery = page.locator('#wd-charts-queues figure[data-queue="delivery"]')
    expect(delivery).to_contain_text("3 started, 3 succeeded, 0 failed, 0 rejected")
    expect(delivery.locator(".wd-wait-p50")).to_have_text("≤ 10 s")
    expect(delivery.locator(".wd-wait-p95")).to_have_text("≤ 60 s")
    expect(page.locator('#wd-charts-queues figure[data-queue="lead-processing"]')).to_contain_text("1 rejected")
    # The newest minute of delivery's started line is above the axis: the jobs were drawn where they ran
    last_y, axis_y = page.locator('svg[data-queue="delivery"] polyline[data-series="started"]').evaluate(
        "n => [n.points[n.points.numberOfItems - 1].y, n.points[0].y]")
    assert last_y < axis_y or page.locator('svg[data-queue="delivery"] polyline[data-series="started"]').evaluate(
        "n => n.points[n.points.numberOfItems - 2].y") < axis_y

    bars = page.locator("#wd-charts-spend rect.wd-bar")
    expect(bars).to_have_count(6)
    assert bars.nth(5).get_attribute("data-cost") == "$0.1250"
    assert float(bars.nth(5).get_attribute("height")) > 0 and float(bars.nth(0).get_attribute("height")) == 0
    expect(page.locator("#wd-charts-status")).to_contain_text("Updated")
    screenshot(page, "dashboard-charts.png")
    assert violations == [] and page.js_errors == []
