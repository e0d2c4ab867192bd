"""API tokens for scripts and monitoring: shown once when made, stored only as a SHA-256 hash."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Tokens are 256 random bits, so a plain SHA-256 (no salt, no stretching) cannot be reversed,
    # and it lets a request's token be found with one indexed lookup.
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the token's first characters, to tell tokens apart
    can_write = models.BooleanField(default=True)  # False: GET only (monitoring)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Who the token's changes are recorded under in the admin's history (LogEntry needs a user): a
    # service user named "token:<name>" that cannot log in (access.auth.service_user). PROTECT: the
    # history must not lose its author; revoking a token deletes the token and keeps the user.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="api_token")

    class Meta:
        verbose_name = "API token"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
