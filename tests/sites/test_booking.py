"""A generated site's call to action is a link (issue 20, item 10): to the site's own /book, which
counts the click and leads to SITE_BOOKING_URL, or to a mail to the agency; never anywhere a request
or the model's answer names."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from sites.content import mock_answer, validate_content
from sites.models import Site
from sites.services import DESIGNS, LeadBrief, render_site

pytestmark = pytest.mark.django_db

BRIEF = LeadBrief(company="Acme", role="CEO", industry="logistics", first_name="Jane", domain="acme.io",
                  country="DE", employee_count=40)


def site(design: str = "bold", **fields) -> Site:
    content = validate_content(mock_answer(BRIEF)[0])
    return Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{len(Site.objects.all())}",
                               design=design, content=content.as_json(),
                               html=render_site(content, design, BRIEF), model="claude-3-haiku-20240307",
                               cost_usd=Decimal("0"), **fields)


@pytest.mark.parametrize("design", DESIGNS)
def test_the_call_to_action_is_a_link_to_the_site_s_own_booking_path(design):
    html = site(design).html
    links = re.findall(r'<a [^>]*href="([^"]*)"[^>]*>\s*(?:<strong>)?Book a call', html)
    assert links == ["book"]  # relative: /sites/<id>/book, no host written into the stored page


def test_a_click_is_counted_and_leads_to_the_booking_url(client, settings):
    settings.SITE_BOOKING_URL = "https://cal.example.com/agency/intro"
    page = site()
    for clicks in (1, 2):
        response = client.get(f"/sites/{page.public_id}/book?next=https://evil.example/")
        assert response.status_code == 302 and response["Location"] == "https://cal.example.com/agency/intro"
        assert response["Cache-Control"] == "no-store"
        page.refresh_from_db()
        assert page.cta_clicks == clicks


def test_a_head_leads_there_without_counting(client, settings):
    settings.SITE_BOOKING_URL = "https://cal.example.com/agency/intro"
    page = site()
    assert client.head(f"/sites/{page.public_id}/book")["Location"] == "https://cal.example.com/agency/intro"
    page.refresh_from_db()
    assert page.cta_clicks == 0


def test_without_a_booking_url_it_is_a_mail_to_the_agency(client, settings):
    settings.SITE_BOOKING_URL = ""
    settings.DEFAULT_FROM_EMAIL = "Acme Agency <hello@agency.example>"
    response = client.get(f"/sites/{site().public_id}/book")
    assert response.status_code == 302 and response["Location"] == "mailto:hello@agency.example"


def test_an_unknown_or_withdrawn_site_or_another_method_leads_nowhere(client):
    page = site(status="withdrawn")
    assert client.get(f"/sites/{page.public_id}/book").status_code == 404
    assert client.get("/sites/site_doesnotexist/book").status_code == 404
    assert client.post(f"/sites/{site().public_id}/book").status_code == 405
    assert not Site.objects.filter(cta_clicks__gt=0).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("design", DESIGNS)
def test_a_site_stored_before_links_gets_a_working_call_to_action(design, client, settings):
    """Pages rendered before 0004 keep their html: sites 0006 makes their call to action the same link."""
    from tests.migrating import migrate

    settings.SITE_BOOKING_URL = "https://cal.example.com/agency/intro"
    made = site(design)
    old_html = re.sub(r'<a (?:class="button" )?href="book" rel="nofollow">(?:<strong>)?(Book a call)(?:</strong>)?</a>',
                      r"<strong>\1</strong>", made.html)  # as the designs rendered it before 0004
    assert 'href="book"' not in old_html and "<strong>Book a call</strong>" in old_html
    old = migrate(("sites", "0005_spend_hours")).get_model("sites", "Site")
    old.objects.filter(pk=made.pk).update(html=old_html)

    migrate(("sites", "0006_old_cta_links"))

    made.refresh_from_db()
    assert re.findall(r'<a [^>]*href="([^"]*)"[^>]*>\s*(?:<strong>)?Book a call', made.html) == ["book"]
    assert made.html.replace('<a href="book" rel="nofollow">', "").replace("</strong></a>", "</strong>") == old_html
    assert client.get(f"/sites/{made.public_id}/book")["Location"] == "https://cal.example.com/agency/intro"
