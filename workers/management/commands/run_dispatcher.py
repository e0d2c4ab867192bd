import signal

from django.core.management.base import BaseCommand

from workers.dispatcher import Dispatcher, dispatch_due_jobs


class Command(BaseCommand):
    help = "Run a dispatcher candidate: the leader publishes due jobs and recovers lost ones."

    def add_arguments(self, parser):
        parser.add_argument("--no-loop", action="store_true", help="run one dispatch round and exit")

    def handle(self, *args, no_loop: bool = False, **options):
        if no_loop:
            stats = dispatch_due_jobs()
            self.stdout.write(f"published {stats.published}, reaped {stats.reaped}, redispatched {stats.redispatched}")
            return
        dispatcher = Dispatcher()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: dispatcher.stop())
        dispatcher.run_forever()
