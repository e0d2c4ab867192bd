"""Cost, formatting, validation, rendering and the public page, with no broker."""
from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from django.core.management import call_command

from leads.models import Lead
from sites.content import LeadBrief, MalformedAnswer, Usage, validate_content
from sites.models import Site
from sites.services import DESIGNS, cost_of, design_for, render_site, usd
from tests.sites.fake_anthropic import site_input
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
def test_cost_report_prints_spend_per_day_and_model_and_the_total(capsys):
    lead = Lead.objects.create(email="a@b.io", status="qualified")
    for n, model in enumerate(["claude-3-haiku-20240307", "claude-3-haiku-20240307", "claude-sonnet-4-5"]):
        Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{n}", lead=lead if n == 0 else None,
                            design="bold", content={}, html="", model=model, input_tokens=2000, output_tokens=500,
                            cost_usd=Decimal("0.001125"))
    call_command("cost_report", "--since", "2020-01-01")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["day", "model", "sites"]
    assert out[1].split()[1:4] == ["claude-3-haiku-20240307", "2", "4000"] and out[1].endswith("$0.00225")
    assert out[2].split()[1:3] == ["claude-sonnet-4-5", "1"]
    assert out[-1] == "💰 Total: 3 sites | 7500 tokens | $0.003375"
    call_command("cost_report", "--since", "2999-01-01")
    assert capsys.readouterr().out.splitlines()[-1] == "💰 Total: 0 sites | 0 tokens | $0.0000"


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
     "configuration error: ANTHROPIC_MODEL_PRICES='1,2,3' must be four USD prices per million tokens: "
     "input,output,cache write,cache read (e.g. 0.25,1.25,0.30,0.03)"),
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
        Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{n}", design="bold", content={}, html="",
                            model=model, input_tokens=2000, output_tokens=500, cost_usd=Decimal("0.001125"))
    Site.objects.create(job_id="00000000-0000-0000-0000-000000000009", design="bold", content={}, html="",
                        model="claude-3-haiku-20240307", input_tokens=1, cost_usd=Decimal("9"),
                        created_at=timezone.now() - timedelta(days=1))  # yesterday's: not today's spend
    data = admin_client.get("/admin/workers/data").json()["aiSpendToday"]
    assert (data["sites"], data["tokens"], data["cost"], data["budget"]) == (3, 7500, "$0.003375", "$5.0000")
    assert data["byModel"] == [
        {"model": "claude-3-haiku-20240307", "sites": 2, "tokens": 5000, "cost": "$0.00225"},
        {"model": "claude-sonnet-4-5", "sites": 1, "tokens": 2500, "cost": "$0.001125"},
    ]
    page = admin_client.get("/admin/workers/").content.decode()
    assert "$0.003375</strong>" in page and "claude-sonnet-4-5 $0.001125" in page and "daily budget $5.0000" in page
