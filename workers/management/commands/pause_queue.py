from django.core.management.base import BaseCommand, CommandError

from workers.pausing import pause_queue


class Command(BaseCommand):
    help = "Stop publishing a queue's jobs on purpose (running jobs finish); resume_queue undoes it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("queue")
        parser.add_argument("--reason", required=True, help="why: shown on the dashboard and in the health API")
        parser.add_argument("--by", default="", help="who paused it (default: the shell user)")

    def handle(self, *args, queue: str, reason: str, by: str, **options) -> None:
        import getpass

        try:
            pause, created = pause_queue(queue, reason, by or getpass.getuser())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if created:
            self.stdout.write(f"{queue} paused: {pause.reason}. Its jobs wait in the ledger until "
                              f"`manage.py resume_queue {queue}`.")
        else:
            self.stdout.write(f"{queue} was already paused since {pause.paused_at:%Y-%m-%d %H:%M:%S} UTC "
                              f"by {pause.paused_by or 'someone'}: {pause.reason}")
