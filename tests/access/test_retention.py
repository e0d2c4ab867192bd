"""The records of logins and admin work are pruned after their retention, a slice at a time, by the
leader's pruning duty (access.retention, registered in AccessConfig.ready)."""
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from resilience.db import db_now
from workers.retention import prune_ledger, prune_slice

pytestmark = pytest.mark.django_db


def _history(user: User, days_ago: float) -> LogEntry:
    entry = LogEntry.objects.create(user=user, action_flag=CHANGE, object_repr="x", change_message="changed")
    LogEntry.objects.filter(pk=entry.pk).update(action_time=db_now() - timedelta(days=days_ago))
    return entry


def _login_record(model, days_ago: float):
    row = model.objects.create(user_agent="ua", ip_address="203.0.113.9", username=f"someone {model.objects.count()}",
                               **({"failures_since_start": 1} if model is AccessAttempt else {}))
    model.objects.filter(pk=row.pk).update(attempt_time=db_now() - timedelta(days=days_ago))
    return row


def test_old_admin_history_goes_recent_stays(settings):
    settings.ADMIN_HISTORY_RETENTION_DAYS = 90
    user = User.objects.create_user("ops")
    old = [_history(user, 100) for _ in range(5)]
    recent = _history(user, 10)
    pruned = prune_ledger(batch_size=2)  # several slices
    assert pruned.by_app["admin history entries"] == len(old)
    assert list(LogEntry.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.parametrize("model, name", [(AccessAttempt, "login attempts (axes)"),
                                         (AccessLog, "successful logins (axes)"),
                                         (AccessFailureLog, "failed logins (axes)")])
def test_old_login_records_go_recent_stay(settings, model, name):
    settings.LOGIN_RECORD_RETENTION_DAYS = 30
    for _ in range(3):
        _login_record(model, 31)
    recent = _login_record(model, 1)
    assert prune_ledger(batch_size=2).by_app[name] == 3
    assert list(model.objects.values_list("pk", flat=True)) == [recent.pk]


def test_expired_sessions_go_live_ones_stay():
    now = timezone.now()
    Session.objects.create(session_key="gone", session_data="", expire_date=now - timedelta(minutes=1))
    Session.objects.create(session_key="live", session_data="", expire_date=now + timedelta(days=1))
    assert prune_ledger().by_app["expired sessions"] == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]


def test_a_slice_deletes_at_most_its_batch():
    user = User.objects.create_user("ops")
    for _ in range(5):
        _history(user, 400)
    pruned, more = prune_slice(batch_size=2, seconds=0)  # the slice ends after its first full batch
    assert more and LogEntry.objects.count() == 3
