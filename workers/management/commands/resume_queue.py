from django.core.management.base import BaseCommand, CommandError

from workers.pausing import resume_queue


class Command(BaseCommand):
    help = "Resume a queue paused with pause_queue."

    def add_arguments(self, parser) -> None:
        parser.add_argument("queue")

    def handle(self, *args, queue: str, **options) -> None:
        try:
            resumed = resume_queue(queue)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{queue} resumed." if resumed else f"{queue} was not paused.")
