"""What access prunes (registered with the runtime in AccessConfig.ready), the records of people's
logins and admin work, which grow with use: the admin's history (django.contrib.admin's LogEntry,
the API's changes included) after ADMIN_HISTORY_RETENTION_DAYS, django-axes' login records (its
attempts, its successful-login log and its failure log) after LOGIN_RECORD_RETENTION_DAYS, and
sessions past their own expiry (what `manage.py clearsessions` would do, a slice at a time).

None of these tables has an index on its time column; their ids grow with time, so each slice
walks the primary key from the oldest row and stops at `limit`, never reading the whole table."""
from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.db.models.functions import Now

from workers.retention import delete_slice


def prune_admin_history(limit: int) -> int:
    cutoff = Now() - timedelta(days=settings.ADMIN_HISTORY_RETENTION_DAYS)
    return delete_slice(LogEntry.objects.filter(action_time__lt=cutoff).order_by("pk"), limit)


def _login_records(model):
    def prune(limit: int) -> int:
        # An attempt newer than the lock-out is what holds a lock-out: the retention is longer (settings).
        cutoff = Now() - timedelta(days=settings.LOGIN_RECORD_RETENTION_DAYS)
        return delete_slice(model.objects.filter(attempt_time__lt=cutoff).order_by("pk"), limit)
    return prune


prune_login_attempts = _login_records(AccessAttempt)
prune_login_log = _login_records(AccessLog)
prune_login_failures = _login_records(AccessFailureLog)


def prune_expired_sessions(limit: int) -> int:
    return delete_slice(Session.objects.filter(expire_date__lt=Now()).order_by("expire_date"), limit)
