from django.core.management.base import BaseCommand, CommandError

from access.auth import create_token
from access.models import ApiToken, Scope, normalize_scopes


class Command(BaseCommand):
    help = "Make an API token for scripts and monitoring; it is printed once and stored only hashed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="what or who uses it, e.g. prometheus")
        parser.add_argument("--scope", action="append", default=[], metavar="|".join(Scope.values),
                            help="what it may do; repeat it or give a comma list (--scope read,dlq). "
                                 + "; ".join(Scope.labels) + ". Without it: read only")
        parser.add_argument("--read-only", action="store_true", help="the same as --scope read (the default)")

    def handle(self, *args, name: str, scope: list[str], read_only: bool, **options) -> None:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("the name must be 1 to 100 characters")
        asked = [part.strip() for value in scope for part in value.split(",") if part.strip()]
        if scope and not asked:
            raise CommandError(f"--scope needs a scope: {', '.join(Scope.values)}")
        try:
            scopes = normalize_scopes(asked or [Scope.READ])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if read_only and scopes != [Scope.READ]:
            raise CommandError(f"--read-only is --scope read: it cannot go with --scope {','.join(scopes)}")
        if ApiToken.objects.filter(name=name).exists():
            raise CommandError(f"a token named {name!r} exists; revoke it (revoke_api_token {name}) or pick another name")
        token, secret = create_token(name, scopes=scopes)
        self.stdout.write(secret)
        self.stderr.write(f"API token {name!r} (scopes: {', '.join(token.scopes)}) created. "
                          "It is shown only this once: use it as 'Authorization: Bearer <token>'.")
