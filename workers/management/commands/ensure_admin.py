"""Create the first admin user, once: `make up` runs this on every start and it does nothing after the first.

With DJANGO_SUPERUSER_USERNAME (and DJANGO_SUPERUSER_PASSWORD, optionally DJANGO_SUPERUSER_EMAIL)
set, that user is created if it does not exist. Otherwise, if no superuser exists yet, user `admin`
is created with a random password, which is printed and saved to var/admin-credentials.txt (0600).
"""
from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

CREDENTIALS_FILE = "admin-credentials.txt"


class Command(BaseCommand):
    help = "Create the first admin (superuser) unless one exists; idempotent."

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        if username:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"admin user {username!r} exists")
                return
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
            if not password:
                raise CommandError("DJANGO_SUPERUSER_USERNAME is set but DJANGO_SUPERUSER_PASSWORD is not")
            email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
            User.objects.create_superuser(username=username, email=email, password=password)
            self.stdout.write(f"created admin user {username!r} (password from DJANGO_SUPERUSER_PASSWORD)")
            return

        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("an admin user exists")
            return
        password = secrets.token_urlsafe(18)
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
        User.objects.create_superuser(username="admin", email=email, password=password)
        path = settings.VAR_DIR / CREDENTIALS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                "# The first admin user, created by `make up`. Change the password in the admin\n"
                "# (top right: Change password); this file is not updated when you do.\n"
                f"username=admin\npassword={password}\n"
            )
        os.chmod(path, 0o600)
        self.stdout.write(f"created admin user 'admin' with password {password}")
        self.stdout.write(f"(saved to {path})")
