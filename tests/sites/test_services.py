"""Cost, formatting, validation, rendering and the public page, with no broker."""
from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from django.core.management import call_command

from fakes.anthropic import site_input
from leads.models import Lead
from sites.content import LeadBrief, MalformedAnswer, Usage, validate_content
from sites.models import Site
from sites.services import DESIGNS, cost_of, design_for, render_site, usd
from tests.sites.conftest import paid_request
from tests.test_settings import MANAGE, start


def test_cost_is_exact_from_the_usage_and_the_price_table():
    assert cost_of(Usage(2000, 500), "claude-3-haiku-20240307") == Decimal("0.001125")
    assert cost_of(Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000), "claude-3-haiku-20240307") == Decimal("1.83")
    assert cost_of(Usage(1, 1, 1, 1), "claude-3-haiku-20240307") == Decimal("0.00000183")
    assert cost_of(Usage(3, 0), "claude-3-haiku-20240307") * 10**6 == Decimal("0.75")  # no float rounding


@pytest.mark.parametrize(("amount", "text"), [
    ("0.0125", "$0.0125"), ("0.1875", "$0.1875"), ("0.001125", "$0.001125"), ("0", "$0.0000"), ("2.5", "$2.5000"),
    ("0.00000183", "$0.00000183"), ("12.30000", "$12.3000"),
])
def test_amounts_are_written_as_the_contract_does_and_never_rounded(amount, text):
    assert usd(Decimal(amount)) == text


def test_validation_names_the_first_problem():
    assert validate_content(site_input()).headline == "Acme builds what you need"
    cases = [
        ({"headline": ""}, "headline must be a non-empty string"),
        ({"sections": [{"title": "a", "body": "b"}]}, "sections must be a list of 2 to 6 items"),
        ({"sections": [{"title": "a", "body": "b"}, {"title": "a"}]}, "sections[1].body must be a non-empty string"),
        ({"palette": {"primary": "#fff", "accent": "#000000", "background": "#ffffff"}},
         "palette.primary must be a #rrggbb colour"),
        ({"call_to_action": "Call us"}, "call_to_action must be an object"),
        ({"headline": "x" * 121}, "headline is longer than 120 characters"),
    ]
    for change, message in cases:
        with pytest.raises(MalformedAnswer, match=message.replace("[", r"\[").replace("]", r"\]")):
            validate_content({**site_input(), **change})
    with pytest.raises(MalformedAnswer, match="the answer must be an object"):
        validate_content(None)


def test_designs_are_chosen_per_lead_deterministically_and_both_are_used():
    assert design_for(7) == design_for(7)
    assert {design_for(n) for n in range(20)} == set(DESIGNS)


@pytest.mark.parametrize("design", DESIGNS)
def test_everything_from_the_lead_or_the_model_is_escaped(design):
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    content = validate_content({**site_input(), "headline": hostile,
                                "sections": [{"title": hostile, "body": "a\n" + hostile}, {"title": "b", "body": "c"}]})
    html = render_site(content, design, LeadBrief(company=hostile, role="CEO", industry="x", domain="acme.io"))
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_the_public_page_has_no_script_and_a_strict_policy(client):
    site = Site.objects.create(job_id="00000000-0000-0000-0000-000000000001", design="bold", content={},
                               html="<!DOCTYPE html><p>hello</p>", model="claude-3-haiku-20240307",
                               cost_usd=Decimal("0.001"))
    response = client.get(f"/sites/{site.public_id}/")
    assert response.status_code == 200 and response.content == b"<!DOCTYPE html><p>hello</p>"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    policy = response["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    assert "script-src" not in policy  # default-src 'none' covers scripts: none at all
    assert client.head(f"/sites/{site.public_id}/").status_code == 200
    assert client.get("/sites/site_doesnotexist/").status_code == 404
    assert client.post(f"/sites/{site.public_id}/").status_code == 405
    Site.objects.filter(pk=site.pk).update(status="withdrawn")
    assert client.get(f"/sites/{site.public_id}/").status_code == 404


@pytest.mark.django_db
def test_cost_report_prints_every_paid_request_per_day_and_model_and_the_total(capsys):
    lead = Lead.objects.create(email="a@b.io", status="qualified")
    for n, model in enumerate(["claude-3-haiku-20240307", "claude-3-haiku-20240307", "claude-sonnet-4-5"]):
        site = Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{n}", lead=lead if n == 0 else None,
                                   design="bold", content={}, html="", model=model, input_tokens=2000,
                                   output_tokens=500, cost_usd=Decimal("0.001125"))
        paid_request(model=model, site=site)
    # Paid for, no site: two malformed answers, and MOCK_MODE's made-up request (never spend).
    paid_request(outcome="malformed", input_tokens=1000, output_tokens=100, cost="0.000375")
    paid_request(outcome="malformed", input_tokens=1000, output_tokens=100, cost="0.000375")
    paid_request(mock=True, cost="5")
    call_command("cost_report", "--since", "2020-01-01")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["day", "model", "requests", "sites"]
    haiku = out[1].split()
    assert haiku[1:6] == ["claude-3-haiku-20240307", "4", "2", "6000", "1200"] and haiku[-3:] == ["$0.00075", "(2)",
                                                                                                 "$0.0030"]
    assert out[2].split()[1:4] == ["claude-sonnet-4-5", "1", "1"] and out[2].endswith("$0.001125")
    assert out[-2] == "(MOCK_MODE made up 1 requests, $5.0000: not spend, not above)"
    assert out[-1] == ("💰 Total: 5 paid requests | 3 sites | 9700 tokens | $0.004125, of which $0.00075 for 2 "
                       "requests that made no site")
    call_command("cost_report", "--since", "2999-01-01")
    assert capsys.readouterr().out.splitlines()[-1] == ("💰 Total: 0 paid requests | 0 sites | 0 tokens | $0.0000, "
                                                        "of which $0.0000 for 0 requests that made no site")


def test_cost_report_refuses_a_bad_date():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--since 'yesterday' is not a date: use YYYY-MM-DD"):
        call_command("cost_report", "--since", "yesterday")


@pytest.mark.parametrize(("overrides", "line"), [
    ({"ANTHROPIC_MODEL": "claude-imaginary"},
     "configuration error: ANTHROPIC_MODEL='claude-imaginary' has no price (known: claude-3-haiku-20240307, "
     "claude-3-5-haiku-20241022, claude-haiku-4-5, claude-sonnet-4-5); set ANTHROPIC_MODEL_PRICES=input,output,"
     "cache write,cache read in USD per million tokens"),
    ({"ANTHROPIC_MODEL_PRICES": "1,2,3"},
     "configuration error: ANTHROPIC_MODEL_PRICES='1,2,3' must be four USD prices per million tokens, each with at "
     "most 4 decimals: input,output,cache write,cache read (e.g. 0.25,1.25,0.30,0.03)"),
    # A fifth decimal would be rounded away by the books (cost = tokens x price / 10^6, 10 decimals kept).
    ({"ANTHROPIC_MODEL_PRICES": "0.25,1.25,0.30,0.00001"},
     "configuration error: ANTHROPIC_MODEL_PRICES='0.25,1.25,0.30,0.00001' must be four USD prices per million "
     "tokens, each with at most 4 decimals: input,output,cache write,cache read (e.g. 0.25,1.25,0.30,0.03)"),
    ({"AI_DAILY_BUDGET_USD": "ten"}, "configuration error: AI_DAILY_BUDGET_USD='ten' is not an amount in USD (e.g. 5 or 0.50)"),
    ({"AI_DAILY_BUDGET_USD": "-1"}, "configuration error: AI_DAILY_BUDGET_USD='-1' must be above 0 (leave it empty for no budget)"),
    ({"MOCK_MODE": "false", "ANTHROPIC_API_KEY": ""},
     "configuration error: ANTHROPIC_API_KEY is not set and MOCK_MODE is off: set the key, or MOCK_MODE=true"),
])
def test_a_bad_ai_setting_stops_start_up_with_one_line(overrides, line):
    result = start(MANAGE, **overrides)
    assert result.returncode == 2 and result.stderr.strip() == line, result.stderr


def test_an_unknown_model_with_its_prices_starts():
    result = start([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                    "print(settings.AI_MODEL_PRICES[settings.ANTHROPIC_MODEL])"],
                   ANTHROPIC_MODEL="claude-new", ANTHROPIC_MODEL_PRICES="1,2,0.5,0.1")
    assert result.stdout.strip() == "('1', '2', '0.5', '0.1')", result.stderr


@pytest.mark.django_db
def test_the_dashboard_shows_the_days_spend_per_model(admin_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.AI_DAILY_BUDGET_USD = Decimal("5")
    for n, model in enumerate(["claude-3-haiku-20240307", "claude-3-haiku-20240307", "claude-sonnet-4-5"]):
        site = Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{n}", design="bold", content={},
                                   html="", model=model, input_tokens=2000, output_tokens=500,
                                   cost_usd=Decimal("0.001125"))
        paid_request(model=model, site=site)
    paid_request(outcome="malformed", cost="0.001")  # paid today, made no site
    paid_request(cost="9", created_at=timezone.now() - timedelta(days=1))  # yesterday's: not today's spend
    paid_request(mock=True, cost="7")  # MOCK_MODE: not spend
    data = admin_client.get("/admin/workers/data").json()["aiSpendToday"]
    assert (data["sites"], data["requests"], data["tokens"], data["cost"], data["budget"]) == (
        3, 4, 10000, "$0.004375", "$5.0000")
    assert (data["noSiteRequests"], data["noSiteCost"]) == (1, "$0.0010")
    assert data["byModel"] == [
        {"model": "claude-3-haiku-20240307", "sites": 2, "requests": 3, "tokens": 7500, "cost": "$0.00325",
         "noSiteCost": "$0.0010"},
        {"model": "claude-sonnet-4-5", "sites": 1, "requests": 1, "tokens": 2500, "cost": "$0.001125",
         "noSiteCost": "$0.0000"},
    ]
    assert (data["mock"]["requests"], data["mock"]["cost"]) == (1, "$7.0000")
    page = admin_client.get("/admin/workers/").content.decode()
    assert "$0.004375</strong>" in page and "claude-sonnet-4-5 $0.001125" in page and "daily budget $5.0000" in page
    assert '<strong data-field="aiSpendNoSite">$0.0010</strong> of it paid for 1' in page
