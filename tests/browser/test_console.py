"""The operator's search and a job's story in a real headless Chromium, against a live server: from
the dashboard's header, an email finds the lead's whole story, and each job's story page opens from
the results, under the admin's Content-Security-Policy."""
from __future__ import annotations

import pytest

from emails.models import Message
from sites.models import Site
from tests.browser.conftest import log_in, screenshot
from tests.monitoring.test_console import jane_through_the_pipeline
from workers.models import Job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_email_in_the_dashboards_search_finds_the_leads_whole_story(page, live_server, staff_user):
    jane = jane_through_the_pipeline()
    refused_by_csp: list[str] = []
    page.on("console", lambda msg: refused_by_csp.append(msg.text) if "Content Security Policy" in msg.text else None)
    log_in(page, live_server)

    page.fill("#wd-search input[name=q]", "Jane@Acme.io")
    page.click("#wd-search input[type=submit]")
    page.wait_for_url("**/admin/workers/search/?q=*")
    assert page.locator("#found-leads").inner_text().count("jane@acme.io") == 1
    site, message = Site.objects.get(lead=jane), Message.objects.get(lead=jane)
    assert site.public_id in page.locator("#found-sites").inner_text()
    assert "jane@acme.io" in page.locator("#found-messages").inner_text()
    assert page.locator("#found-dead-letters tbody tr").count() == 1
    jobs = page.locator("#found-jobs").inner_text()
    for job in Job.objects.all():
        assert str(job.pk) in jobs
    assert page.locator(".messagelist").count() == 0  # the admin's own message list stays empty
    screenshot(page, "console-search.png")

    page.click(f"#found-jobs a[href$='/admin/workers/job/{message.job_id}/story/']")
    page.wait_for_url(f"**/admin/workers/job/{message.job_id}/story/")
    assert "email-sending@primary.test" in page.locator("#story-attempts").inner_text()
    assert "relay denied" in page.locator("#story-dead-letter").inner_text()
    assert "sk-ant-" not in page.content()
    screenshot(page, "job-story.png")

    # Back from the row's page: the message's admin page links to the same story.
    page.click("#story-rows a:text('outreach to jane@acme.io')")
    page.wait_for_url(f"**/admin/emails/message/{message.pk}/change/")
    page.click(f"a.job-story-link[href$='/{message.job_id}/story/']")
    page.wait_for_url(f"**/admin/workers/job/{message.job_id}/story/")
    assert refused_by_csp == [] and page.js_errors == []
