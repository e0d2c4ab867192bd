"""API tokens for scripts and monitoring: shown once when made, stored only as a SHA-256 hash."""
from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Scope(models.TextChoices):
    """What a token may do, each operation of the admin API needing one (access.auth.admin_api)."""

    READ = "read", "read: every GET (health, metrics, dead letters, deliveries, the OpenAPI document)"
    DLQ = "dlq", "dlq: resolve, re-open, requeue and delete dead letters"
    DELIVER = "deliver", "deliver: mark a lead won and start its delivery"
    ADMIN = "admin", "admin: every other change"


def default_scopes() -> list[str]:
    # A new token reads and nothing more: a token made for Prometheus must not be able to requeue.
    return [Scope.READ.value]


def normalize_scopes(scopes) -> list[str]:
    """The scopes in their canonical order, once each; ValueError naming an unknown one."""
    wanted = set()
    for scope in scopes:
        if scope not in Scope.values:
            raise ValueError(f"unknown scope {scope!r}: choose from {', '.join(Scope.values)}")
        wanted.add(scope)
    return [scope for scope in Scope.values if scope in wanted]


class ApiToken(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Tokens are 256 random bits, so a plain SHA-256 (no salt, no stretching) cannot be reversed,
    # and it lets a request's token be found with one indexed lookup.
    key_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the token's first characters, to tell tokens apart
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=default_scopes)
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

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
