from django.conf import settings
from django.core.management.base import BaseCommand

from workers.retention import prune_ledger


class Command(BaseCommand):
    help = ("Move finished jobs older than the retention period out of the ledger into daily statistics, "
            "and remove resolved dead-letter entries and lead submissions past their own retention "
            "(the dispatcher's leader does this hourly, a slice at a time).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=settings.LEDGER_RETENTION_DAYS,
                            help="keep finished jobs this many days (default LEDGER_RETENTION_DAYS)")

    def handle(self, *args, days: int, **options) -> None:
        if days < 0:
            self.stderr.write("--days must be 0 or more")
            raise SystemExit(2)
        pruned = prune_ledger(retention_days=days)
        apps = "".join(f", {n} {name}" for name, n in pruned.by_app.items())
        self.stdout.write(
            f"Pruned {pruned.jobs} finished job(s) older than {days} day(s) into daily statistics (with their "
            f"Celery results); removed {pruned.heartbeats} old worker heartbeat(s), {pruned.task_results} old "
            f"Celery result(s) of no ledger job{apps} (each after its retention: DLQ_RESOLVED_RETENTION_DAYS="
            f"{settings.DLQ_RESOLVED_RETENTION_DAYS}, SUBMISSION_RETENTION_DAYS={settings.SUBMISSION_RETENTION_DAYS}).")
