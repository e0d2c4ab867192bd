"""Issue 18, items 4 and 6, at the wire: messages as a real SMTP server received them and as a mail
client parses them (email.policy.default decodes encoded words, as clients do): their Date, List-Id,
From, To and Subject, and which of their links are tracked and which stayed text."""
import re
from datetime import timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from django.utils import timezone as django_timezone

from emails import services
from emails.models import Campaign, Message
from tests.emails.helpers import make_lead, run_due_email_jobs

pytestmark = pytest.mark.django_db(transaction=True)
SITE = "https://sites.example.com/sites/abc123/"
HOSTILE = "Visit https://evil.example/login now"
CLICK = re.compile(r"http://testserver(/email/click/[^\s\"'<>]+)")


def parts(received) -> tuple[str, str]:
    return received.get_body(("plain",)).get_content(), received.get_body(("html",)).get_content()


def click_targets(client, *texts: str) -> list[str]:
    """Where each click link in `texts` leads, asked of the click endpoint itself."""
    return [client.head(path)["Location"] for text in texts for path in CLICK.findall(text)]


def launch(**fields) -> Campaign:
    campaign = Campaign.objects.create(**{"name": "Spring", "audience": "qualified", **fields})
    services.launch_campaign(campaign.id)
    run_due_email_jobs()
    return campaign


def test_a_url_in_a_leads_first_name_is_text_never_a_tracked_link(client, smtp_sink):
    """The outreach template puts the first name in both parts: it arrives as the lead wrote it, and
    no click link of the message leads to evil.example; the author's link (the site) is tracked."""
    lead = make_lead("jane@acme.io", first_name=HOSTILE, company="Acme https://evil.example/pay")
    services.queue_outreach(lead.id, SITE)
    run_due_email_jobs()

    [received] = smtp_sink.to("jane@acme.io")
    text, html = parts(received)
    assert "https://evil.example/login" in text and "https://evil.example/pay" in text  # text, as given
    assert "https://evil.example/login" in html
    assert click_targets(client, text, html) == [SITE, SITE]  # the site's link in each part, nothing else
    assert Message.objects.get().links == [SITE]
    assert not any("evil.example" in path for path in CLICK.findall(text + html))


def test_only_links_the_template_author_wrote_are_tracked_in_a_campaign(client, smtp_sink):
    make_lead("jane@acme.io", first_name=HOSTILE, website="https://evil.example/",
              company='<a href="https://evil.example/x">Acme</a>')
    launch(subject_template="Hi {{ first_name }}",
           text_template="Hi {{ first_name }}, see https://agency.example/offer and {{ website }}.\n"
                         "Ours: https://{{ company }}.example/",
           html_template='<p>Hi {{ first_name }}, <a href="https://agency.example/offer?a=1&amp;b=2">the offer</a>, '
                         '{{ website }}, {{ company }}</p>')

    [received] = smtp_sink.to("jane@acme.io")
    text, html = parts(received)
    assert click_targets(client, text, html) == ["https://agency.example/offer", "https://agency.example/offer?a=1&b=2"]
    # The lead's website is text, never a link (a lead field in an href is refused at save:
    # tests/emails/test_campaign_templates.py); the company's markup is escaped text.
    assert 'href="https://evil.example/"' not in html and "&lt;a href=&quot;https://evil.example/x&quot;&gt;" in html
    assert "and https://evil.example/." in text and "https://<a href=\"https://evil.example/x\">Acme</a>" in text
    assert Message.objects.get().links == ["https://agency.example/offer?a=1&b=2", "https://agency.example/offer"]


def test_date_list_id_from_and_to_as_a_mail_client_reads_them(smtp_sink, settings):
    settings.CAMPAIGN_FROM_EMAIL = "Agency News <news@mail.agency.test>"
    lead = make_lead("jane@acme.io", first_name="Jane", last_name="O'Neil")
    services.queue_outreach(lead.id, SITE)
    services.queue_message(key="handover:1", to="jane@acme.io", template="handover", context={"site_url": SITE},
                           lead_id=lead.id)
    run_due_email_jobs()
    campaign = launch(subject_template="News", text_template="Hello {{ first_name }}")

    received = {m["List-Id"]: m for m in smtp_sink.to("jane@acme.io")}
    assert set(received) == {"<outreach.mail.agency.test>", "<transactional.agency.test>",
                             f"<campaign-{campaign.id}.mail.agency.test>"}
    for message in received.values():
        assert message["Date"].endswith(" +0000"), message["Date"]  # UTC, not "-0000" (zone unknown)
        assert abs(parsedate_to_datetime(message["Date"]) - django_timezone.now()) < timedelta(minutes=1)
        assert parsedate_to_datetime(message["Date"]).tzinfo == timezone.utc
        assert message["To"].addresses[0].display_name == "Jane O'Neil"
        assert message["To"].addresses[0].addr_spec == "jane@acme.io"
    # Transactional mail from DEFAULT_FROM_EMAIL, marketing (outreach, campaigns) from CAMPAIGN_FROM_EMAIL.
    assert str(received["<transactional.agency.test>"]["From"]) == "Agency <hello@agency.test>"
    assert str(received["<outreach.mail.agency.test>"]["From"]) == "Agency News <news@mail.agency.test>"
    assert str(received[f"<campaign-{campaign.id}.mail.agency.test>"]["From"]) == "Agency News <news@mail.agency.test>"


@pytest.mark.parametrize("first_name, shown", [
    ("=?utf-8?q?Your_account_is_suspended?=", ""),  # a client would show the decoded words
    ("=?UTF-8?B?SmFuZQ==?= Doe", "Doe"),
    ("Jane\u202egnp.exe", "Janegnp.exe"),  # RIGHT-TO-LEFT OVERRIDE: would read "Janeexe.png"
    ("Ja\u200bne\u2066\u200d\u2069\ufeff", "Jane"),  # zero-width space, isolates, joiner, BOM
    ("J\u00f6rg\r\nBcc: x@evil.example", "J\u00f6rg Bcc: x@evil.example"),  # no header injection either
])
def test_what_a_lead_gives_reaches_the_subject_and_to_as_plain_visible_text(smtp_sink, first_name, shown):
    lead = make_lead("jane@acme.io", first_name=first_name, last_name="", company="Acme")
    services.queue_outreach(lead.id, SITE)
    run_due_email_jobs()

    [received] = smtp_sink.to("jane@acme.io")
    # strip(): Django folds a long encoded Subject right after "Subject:", which the parser keeps as a space
    assert received["Subject"].strip() == f"{shown}, we built a website for Acme"
    assert received["To"].addresses[0].display_name == shown
    assert received["Bcc"] is None and len(received["To"].addresses) == 1


def test_lead_names_lose_bidi_and_zero_width_characters_when_normalised():
    from leads.services import normalize_lead

    lead = normalize_lead({"email": "jane@acme.io", "first_name": "Ja\u200bne\u202e", "company": "Ac\u2066me\u2069"})
    assert (lead.first_name, lead.company) == ("Jane", "Acme")
