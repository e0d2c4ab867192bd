"""The spend figures (cost lines, budget, admin, cost_report, /metrics) read the books' running totals
(SpendDay, kept by triggers on AiRequest), not the whole table, and equal the full sums of the books."""
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.test.utils import CaptureQueriesContext

from resilience.db import db_now
from sites import budget
from sites.models import AiRequest, Site
from sites.services import (paid_requests_by_model_and_outcome, spend_by_day_and_model, total_line, total_spend,
                            utc_day)
from tests.migrating import migrate, migrate_to_latest
from tests.sites.conftest import paid_request

HAIKU, SONNET = "claude-3-haiku-20240307", "claude-sonnet-4-5"
NO_SITE = Q(site__isnull=True)
TOKENS = F("input_tokens") + F("output_tokens") + F("cache_write_tokens") + F("cache_read_tokens")


# --- the old full sums over the books, the reference the running totals must equal -------------

def full_spend(since: date | None = None, mock: bool = False) -> dict:
    rows = AiRequest.objects.filter(mock=mock)
    if since is not None:
        rows = rows.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=timezone.utc))
    return rows.aggregate(
        sites=Count("site", distinct=True), requests=Count("id"), tokens=Coalesce(Sum(TOKENS), 0),
        cost=Coalesce(Sum("cost_usd"), Decimal(0)), no_site_requests=Count("id", filter=NO_SITE),
        no_site_cost=Coalesce(Sum("cost_usd", filter=NO_SITE), Decimal(0)))


def full_by_day_and_model(mock: bool = False) -> list[dict]:
    rows = (
        AiRequest.objects.filter(mock=mock).annotate(day=TruncDate("created_at", tzinfo=timezone.utc))
        .values("day", "model")
        .annotate(requests=Count("id"), sites=Count("site", distinct=True), input_tokens=Sum("input_tokens"),
                  output_tokens=Sum("output_tokens"), cache_write_tokens=Sum("cache_write_tokens"),
                  cache_read_tokens=Sum("cache_read_tokens"), cost=Sum("cost_usd"),
                  no_site_requests=Count("id", filter=NO_SITE),
                  no_site_cost=Coalesce(Sum("cost_usd", filter=NO_SITE), Decimal(0)))
        .order_by("-day", "model"))
    return [{**row, "tokens": row["input_tokens"] + row["output_tokens"] + row["cache_write_tokens"]
             + row["cache_read_tokens"]} for row in rows]


def full_by_model_and_outcome() -> list[dict]:
    return list(AiRequest.objects.filter(mock=False).values("model", "outcome")
                .annotate(requests=Count("id"), cost=Sum("cost_usd")).order_by("model", "outcome"))


def spend_dict(since=None, mock=False) -> dict:
    spend = total_spend(since, mock=mock)
    return {name: getattr(spend, name) for name in ("sites", "requests", "tokens", "cost", "no_site_requests",
                                                    "no_site_cost")}


def site(n: int, model: str = HAIKU) -> Site:
    return Site.objects.create(job_id=f"00000000-0000-0000-0000-{n:012d}", design="bold", content={}, html="",
                               model=model, cost_usd=Decimal(0))


def books() -> None:
    """Paid requests as the workers write them: recorded first, the site set later (sites.work), a
    malformed answer asked again, refusals, other models, earlier days, MOCK_MODE's made-up ones."""
    two_days_ago = db_now() - timedelta(days=2)
    for n, (model, outcome, cost, days_ago) in enumerate([
        (HAIKU, "valid", "0.001125", 0), (HAIKU, "malformed", "0.000375", 0), (SONNET, "valid", "0.0123456789", 0),
        (SONNET, "refused", "0.01", 0), (HAIKU, "valid", "0.002", 2), (HAIKU, "malformed", "0.0001", 2),
    ]):
        row = paid_request(model=model, outcome=outcome, cost=cost, input_tokens=1000 + n, output_tokens=10 * n,
                           cache_write_tokens=n, cache_read_tokens=2 * n, request_id=f"req_{n}")
        if days_ago:
            AiRequest.objects.filter(pk=row.pk).update(created_at=two_days_ago)
    # The malformed then valid answers behind one site, and a plain one, linked as sites.work does.
    made = site(1)
    AiRequest.objects.filter(request_id__in=["req_0", "req_1"]).update(site=made)
    AiRequest.objects.filter(request_id="req_2").update(site=site(2, SONNET))
    AiRequest.objects.filter(request_id="req_4").update(site=site(3))
    paid_request(mock=True, cost="5", site=site(4))  # MOCK_MODE: a site, never spend
    paid_request(mock=True, outcome="malformed", cost="1")


@pytest.mark.django_db
def test_the_figures_equal_the_full_sums_of_the_books():
    books()
    today = utc_day(db_now())
    for since in (None, today, today - timedelta(days=2), today + timedelta(days=1)):
        for mock in (False, True):
            assert spend_dict(since, mock) == full_spend(since, mock), (since, mock)
    assert spend_dict()["sites"] == 3 and spend_dict(mock=True)["sites"] == 1
    assert spend_by_day_and_model() == full_by_day_and_model()
    assert spend_by_day_and_model(mock=True) == full_by_day_and_model(mock=True)
    assert paid_requests_by_model_and_outcome() == full_by_model_and_outcome()
    assert budget.spend_today() == full_spend(today)["cost"] == Decimal("0.0238456789")


@pytest.mark.django_db
def test_removed_paid_requests_leave_the_totals_too():
    books()
    AiRequest.objects.filter(request_id__in=["req_3", "req_5"]).delete()  # (bench empties the books so)
    assert spend_dict() == full_spend() and spend_by_day_and_model() == full_by_day_and_model()
    AiRequest.objects.all().delete()
    assert spend_dict() == full_spend() and spend_by_day_and_model() == [] == paid_requests_by_model_and_outcome()


@pytest.mark.django_db
def test_the_cost_line_and_the_admins_site_list_never_read_the_books(client):
    books()
    client.force_login(User.objects.create_superuser("root", password="x"))
    with CaptureQueriesContext(connection) as queries:
        line = total_line(total_spend())
        page = client.get("/admin/sites/site/")
    assert page.status_code == 200 and line.startswith("💰 Total: 3 sites")
    assert not [q["sql"] for q in queries if "sites_airequest" in q["sql"]]


@pytest.mark.django_db(transaction=True)
def test_the_migration_sums_the_books_already_there():
    try:
        old = migrate(("sites", "0002_ai_requests"))
        OldSite, OldRequest = old.get_model("sites", "Site"), old.get_model("sites", "AiRequest")
        made = OldSite.objects.create(job_id="00000000-0000-0000-0000-000000000009", design="bold", content={},
                                      html="", model=HAIKU, cost_usd=Decimal("0.003"))
        OldRequest.objects.create(model=HAIKU, outcome="valid", site=made, input_tokens=2000, cost_usd=Decimal("0.002"))
        OldRequest.objects.create(model=HAIKU, outcome="malformed", input_tokens=100, cost_usd=Decimal("0.001"))
        migrate(("sites", "0003_spend_days"))
        assert spend_dict() == full_spend() == {"sites": 1, "requests": 2, "tokens": 2100, "cost": Decimal("0.003"),
                                                "no_site_requests": 1, "no_site_cost": Decimal("0.001")}
    finally:
        migrate_to_latest()
