"""AI spend per UTC day and model, and the total, from the sites table (every pool and host)."""
from __future__ import annotations

from datetime import date, datetime, time, timezone

from django.core.management.base import BaseCommand, CommandError

from sites.services import spend_by_day_and_model, total_line, total_spend, usd


class Command(BaseCommand):
    help = "Print the AI spend per day (UTC) and model, then the total."

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
        header = f"{'day':<10}  {'model':<28} {'sites':>6} {'input':>10} {'output':>10} {'cache w':>9} " \
                 f"{'cache r':>9} {'tokens':>10}  cost"
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(
                f"{row['day']:%Y-%m-%d}  {row['model']:<28} {row['sites']:>6} {row['input_tokens']:>10} "
                f"{row['output_tokens']:>10} {row['cache_write_tokens']:>9} {row['cache_read_tokens']:>9} "
                f"{row['tokens']:>10}  {usd(row['cost'])}")
        if not rows:
            self.stdout.write("(no site generated" + (f" since {day}" if day else "") + ")")
        since_moment = datetime.combine(day, time.min, tzinfo=timezone.utc) if day else None
        self.stdout.write(total_line(total_spend(since_moment)))
