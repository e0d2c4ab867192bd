from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from workers.probe import PROBE_FAILURES, enqueue_probe


class Command(BaseCommand):
    help = "Queue N probe jobs (diagnostic jobs that sleep, and optionally fail) on a queue."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("--queue", default="lead-processing", choices=settings.QUEUE_NAMES)
        parser.add_argument("--sleep", type=float, default=0.0, help="seconds each probe runs")
        parser.add_argument("--fail", default="", choices=PROBE_FAILURES)

    def handle(self, *args, count: int, queue: str, sleep: float, fail: str, **options):
        if not 1 <= count <= 100_000:
            raise CommandError(f"count must be from 1 to 100000, got {count}")
        if sleep < 0:
            raise CommandError(f"--sleep must not be negative, got {sleep}")
        with transaction.atomic():
            jobs = [enqueue_probe(queue, sleep=sleep, fail=fail) for _ in range(count)]
        web = f"http://127.0.0.1:{settings.WEB_PORT}"
        flower = settings.FLOWER_PUBLIC_URL or f"http://127.0.0.1:{settings.FLOWER_PORT}"
        self.stdout.write(f"queued {len(jobs)} probe job(s) on {queue}:")
        shown = jobs if len(jobs) <= 20 else jobs[:10]
        for job in shown:
            self.stdout.write(f"  {job.id}")
        if len(jobs) > len(shown):
            self.stdout.write(f"  ... and {len(jobs) - len(shown)} more")
        # The ledger is the truth about a job; Flower shows the same ids as Celery task ids.
        self.stdout.write("watch them:")
        self.stdout.write(f"  ledger     {web}/admin/workers/job/?queue__exact={queue}")
        if len(jobs) == 1:
            self.stdout.write(f"  this job   {web}/admin/workers/job/{jobs[0].id}/change/")
        self.stdout.write(f"  dashboard  {web}/admin/workers/")
        self.stdout.write(f"  Flower     {flower}/tasks (search a job id)")
