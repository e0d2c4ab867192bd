from django.core.management.base import BaseCommand, CommandError

from access.models import ApiToken


class Command(BaseCommand):
    help = "Revoke an API token: it is deleted, and requests carrying it get 401 from now on."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")

    def handle(self, *args, name: str, **options) -> None:
        deleted, _ = ApiToken.objects.filter(name=name).delete()
        if not deleted:
            raise CommandError(f"no API token named {name!r}")
        self.stdout.write(f"API token {name!r} revoked.")
