"""Site generation's plain functions: enqueue, cost, rendering, spend figures (from the running totals of
the paid requests, SpendDay) and the cost lines."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string

from leads.models import Lead
from sites.content import LeadBrief, SiteContent, Usage
from sites.models import Site, SpendDay
from workers import ledger
from workers.models import Job

logger = logging.getLogger(__name__)

SITE_QUEUE = "site-generation"
SITE_TASK = "sites.generate_site"
DESIGNS = ("bold", "classic")
_MILLION = Decimal(1_000_000)


def site_generation_key(lead_id: int) -> str:
    return f"site-generation:lead:{lead_id}"


def enqueue_site_generation(lead: Lead) -> Job:
    """Call in the transaction that qualifies `lead`. One job per lead, ever: the key makes a merged
    duplicate (or a second qualification) return the first job."""
    return ledger.enqueue(SITE_QUEUE, SITE_TASK, {"lead_id": lead.pk}, idempotency_key=site_generation_key(lead.pk))


def site_generation_job(lead_id: int) -> Job | None:
    """The lead's one site-generation job, or None: it was never qualified (or its finished job was pruned)."""
    return Job.objects.filter(idempotency_key=site_generation_key(lead_id)).first()


def brief_for(lead: Lead) -> LeadBrief:
    return LeadBrief(company=lead.company, role=lead.title, industry=lead.industry, first_name=lead.first_name,
                     domain=lead.domain, country=lead.country, employee_count=lead.employee_count)


def design_for(lead_id: int) -> str:
    """The same lead always gets the same design; leads spread evenly over the designs."""
    return DESIGNS[hashlib.sha256(f"lead:{lead_id}".encode()).digest()[0] % len(DESIGNS)]


def render_site(content: SiteContent, design: str, brief: LeadBrief) -> str:
    """Django templates with autoescape: nothing from the lead or the model is ever marked safe; the
    colours, the one thing in CSS, were checked as #rrggbb by validate_content."""
    return render_to_string(f"sites/designs/{design}.html", {"content": content, "brief": brief})


# --- cost ------------------------------------------------------------------------------------------

def prices(model: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """USD per million tokens: input, output, cache write, cache read (settings.AI_MODEL_PRICES)."""
    return tuple(Decimal(p) for p in settings.AI_MODEL_PRICES[model])  # type: ignore[return-value]


def cost_of(usage: Usage, model: str) -> Decimal:
    """Exact: integers times decimal prices, divided by a power of ten; no float on the way."""
    p_in, p_out, p_write, p_read = prices(model)
    return (usage.input_tokens * p_in + usage.output_tokens * p_out + usage.cache_write_tokens * p_write
            + usage.cache_read_tokens * p_read) / _MILLION


def usd(amount: Decimal) -> str:
    """$0.0125 as the contract writes it: at least 4 decimals, and every digit an exact amount has."""
    amount = amount.normalize()
    if amount.as_tuple().exponent > -4:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.0001"))
    return f"${amount:f}"


@dataclass(frozen=True)
class Spend:
    sites: int  # sites the requests made
    requests: int  # paid requests, the ones that made no site included
    tokens: int
    cost: Decimal
    no_site_requests: int = 0
    no_site_cost: Decimal = Decimal(0)


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_write_tokens", "cache_read_tokens")
# What each figure sums (named apart from SpendDay's columns, which an annotation may not shadow).
_FIGURES = {"requests": "requests", "sites": "sites", "no_site_requests": "no_site_requests",
            **{name: name for name in _TOKEN_FIELDS}, "cost": "cost_usd", "no_site_cost": "no_site_cost_usd"}
_SUMS = {f"sum_{figure}": Sum(column) for figure, column in _FIGURES.items()}


def _days(since: date | None, mock: bool):
    """The books' running totals (SpendDay, kept by triggers on AiRequest): a few rows a day, whatever
    the number of paid requests."""
    rows = SpendDay.objects.filter(mock=mock)
    return rows if since is None else rows.filter(day__gte=since)


def _figures(row: dict) -> dict:
    """A row of _SUMS (and the keys it was grouped by) as figures: zero where nothing was paid."""
    figures = {key: value for key, value in row.items() if not key.startswith("sum_")}
    for figure in _FIGURES:
        value = row[f"sum_{figure}"]
        figures[figure] = value if value is not None else (Decimal(0) if figure.endswith("cost") else 0)
    return {**figures, "tokens": sum(figures[name] for name in _TOKEN_FIELDS)}


def total_spend(since: date | None = None, *, mock: bool = False) -> Spend:
    """Every paid request of every pool and host since the start of UTC day `since` (or ever), from the
    running totals. MOCK_MODE's made-up requests are counted only when asked for (mock=True), never with
    real ones."""
    row = _figures(_days(since, mock).aggregate(**_SUMS))
    return Spend(sites=row["sites"], requests=row["requests"], tokens=row["tokens"], cost=row["cost"],
                 no_site_requests=row["no_site_requests"], no_site_cost=row["no_site_cost"])


def spend_on(day: date) -> Decimal:
    """The real spend of a UTC day: what the budget reads before every request (its day's few rows)."""
    return _days(day, mock=False).filter(day=day).aggregate(cost=Coalesce(Sum("cost_usd"), Decimal(0)))["cost"]


def utc_day(moment: datetime) -> date:
    return moment.astimezone(dt_timezone.utc).date()


def spend_by_day_and_model(since: date | None = None, *, mock: bool = False, limit: int | None = None) -> list[dict]:
    """[{day, model, requests, sites, input/output/cache tokens, tokens, cost, no_site_requests,
    no_site_cost}], newest day first (UTC days): what made a site and what was paid for nothing.
    At most `limit` rows (the newest), when given."""
    grouped = (_days(since, mock).values("day", "model").annotate(**_SUMS).filter(sum_requests__gt=0)
               .order_by("-day", "model"))
    return [_figures(row) for row in (grouped if limit is None else grouped[:limit])]


def paid_requests_by_model_and_outcome() -> list[dict]:
    """[{model, outcome, requests, cost}] over the whole books, MOCK_MODE's left out (for /metrics)."""
    rows = (_days(None, mock=False).values("model", "outcome").annotate(n=Sum("requests"), usd=Sum("cost_usd"))
            .filter(n__gt=0).order_by("model", "outcome"))
    return [{"model": row["model"], "outcome": row["outcome"], "requests": row["n"], "cost": row["usd"]}
            for row in rows]


def site_line(site: Site) -> str:
    return f"✅ Site generated: {site.public_id} | {site.total_tokens} tokens | {usd(site.cost_usd)}"


def total_line(spend: Spend, *, mock: bool = False) -> str:
    line = f"💰 Total: {spend.sites} sites | {spend.tokens} tokens | {usd(spend.cost)}"
    if spend.no_site_requests:
        line += f" ({spend.no_site_requests} paid requests made no site: {usd(spend.no_site_cost)})"
    return line + (" [MOCK_MODE: made-up figures, not spend]" if mock else "")


def log_cost_lines(site: Site) -> None:
    """After the site's transaction committed: the total then includes it, and every other pool's."""
    logger.info(site_line(site))
    logger.info(total_line(total_spend(mock=site.mock), mock=site.mock))


def _summary(spend: Spend) -> dict:
    return {"sites": spend.sites, "requests": spend.requests, "tokens": spend.tokens, "cost": usd(spend.cost),
            "costUsd": str(spend.cost), "noSiteRequests": spend.no_site_requests,
            "noSiteCost": usd(spend.no_site_cost)}


def spend_today_summary(now: datetime) -> dict:
    """The day's spend (UTC) for the worker dashboard: total, per model, the budget, and MOCK_MODE's
    made-up figures apart."""
    day = utc_day(now)
    budget = settings.AI_DAILY_BUDGET_USD
    return {
        "day": day.isoformat(), **_summary(total_spend(since=day)),
        "budget": usd(budget) if budget is not None else None,
        "byModel": [{"model": row["model"], "sites": row["sites"], "requests": row["requests"],
                     "tokens": row["tokens"], "cost": usd(row["cost"]), "noSiteCost": usd(row["no_site_cost"])}
                    for row in spend_by_day_and_model(day)],
        "mock": _summary(total_spend(since=day, mock=True)),
    }
