from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "API access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_init

        from access import audit, retention
        from workers import registry

        # The admin's history keeps what it is given (an object's str(), a message): redacted first.
        post_init.connect(audit.redact_new_entry, sender=LogEntry, dispatch_uid="access.redact_admin_history")

        # The records of logins and admin work, which this app configures (axes, the admin's history).
        registry.prune("admin history entries", retention.prune_admin_history)
        registry.prune("login attempts (axes)", retention.prune_login_attempts)
        registry.prune("successful logins (axes)", retention.prune_login_log)
        registry.prune("failed logins (axes)", retention.prune_login_failures)
        registry.prune("expired sessions", retention.prune_expired_sessions)
