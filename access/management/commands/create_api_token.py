from django.core.management.base import BaseCommand, CommandError

from access.auth import create_token
from access.models import ApiToken


class Command(BaseCommand):
    help = "Make an API token for scripts and monitoring; it is printed once and stored only hashed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="what or who uses it, e.g. prometheus")
        parser.add_argument("--read-only", action="store_true", help="GET requests only (health, metrics)")

    def handle(self, *args, name: str, read_only: bool, **options) -> None:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("the name must be 1 to 100 characters")
        if ApiToken.objects.filter(name=name).exists():
            raise CommandError(f"a token named {name!r} exists; revoke it (revoke_api_token {name}) or pick another name")
        token, secret = create_token(name, can_write=not read_only)
        self.stdout.write(secret)
        self.stderr.write(f"API token {name!r} ({'read-only' if read_only else 'read and write'}) created. "
                          "It is shown only this once: use it as 'Authorization: Bearer <token>'.")
