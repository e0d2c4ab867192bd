"""AI spend per UTC day and model from the books (every paid request, of every pool and host, the
ones that made no site included), then the total of every paid request."""
from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from sites.services import spend_by_day_and_model, total_spend, usd


class Command(BaseCommand):
    help = "Print the AI spend per day (UTC) and model, what made a site and what did not, then the total."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="first day to count, YYYY-MM-DD (UTC); default: every day")

    def handle(self, *args, since: str | None = None, **options):
        day = None
        if since:
            try:
                day = date.fromisoformat(since)
            except ValueError:
                raise CommandError(f"--since {since!r} is not a date: use YYYY-MM-DD") from None
        rows = spend_by_day_and_model(day)
        self.stdout.write(f"{'day':<10}  {'model':<28} {'requests':>8} {'sites':>6} {'input':>10} {'output':>10} "
                          f"{'cache w':>9} {'cache r':>9} {'tokens':>10}  {'paid, no site':>18}  cost")
        for row in rows:
            no_site = f"{usd(row['no_site_cost'])} ({row['no_site_requests']})"
            self.stdout.write(
                f"{row['day']:%Y-%m-%d}  {row['model']:<28} {row['requests']:>8} {row['sites']:>6} "
                f"{row['input_tokens']:>10} {row['output_tokens']:>10} {row['cache_write_tokens']:>9} "
                f"{row['cache_read_tokens']:>9} {row['tokens']:>10}  {no_site:>18}  {usd(row['cost'])}")
        if not rows:
            self.stdout.write("(no paid request" + (f" since {day}" if day else "") + ")")
        spend = total_spend(day)
        mock = total_spend(day, mock=True)
        if mock.requests:
            self.stdout.write(f"(MOCK_MODE made up {mock.requests} requests, {usd(mock.cost)}: not spend, not above)")
        self.stdout.write(f"💰 Total: {spend.requests} paid requests | {spend.sites} sites | {spend.tokens} tokens | "
                          f"{usd(spend.cost)}, of which {usd(spend.no_site_cost)} for {spend.no_site_requests} "
                          "requests that made no site")
