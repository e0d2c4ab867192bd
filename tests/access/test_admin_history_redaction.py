"""The admin's history (django_admin_log) never stores a secret by value: object_repr and
change_message are redacted before the row is written, whether the admin saves one entry or many."""
import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.db import connection

from access.audit import log_api_change
from dlq.models import DeadLetter
from tests.dlq.test_admin_actions import CHANGELIST, act, dead_probe

pytestmark = pytest.mark.django_db(transaction=True)

# The webhook secret of the test settings (redacted by value) and secrets recognisable by their shape.
SECRETS = ("test-clay-secret", "hunter2hunter2", "rsl_live_0123456789abcdef")
# Within the 80 characters of a dead letter's str().
ERROR = "Bearer rsl_live_0123456789abcdef password=hunter2hunter2 test-clay-secret"


def stored_history() -> str:
    """Every row of django_admin_log as PostgreSQL holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT object_repr, change_message FROM django_admin_log")
        return repr(cursor.fetchall())


@pytest.fixture
def admin_client(client, redis_client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    return client


def test_deleting_dead_letters_whose_error_holds_secrets_logs_them_redacted(admin_client):
    # Two entries: the admin writes their history in one bulk_create, which sends no pre_save.
    doomed = [dead_probe(), dead_probe()]
    DeadLetter.objects.filter(pk__in=[entry.pk for entry in doomed]).update(error_message=ERROR)

    act(admin_client, "delete_selected", doomed, post="yes")

    assert LogEntry.objects.count() == 2
    history = stored_history()
    assert "Bearer [redacted] password=[redacted] [redacted]" in history
    assert not [secret for secret in SECRETS if secret in history], history


def test_one_entry_and_its_message_are_redacted_and_a_json_message_stays_readable(admin_client):
    user = User.objects.get(username="root")
    entry = dead_probe()
    DeadLetter.objects.filter(pk=entry.pk).update(error_message=ERROR)
    entry.refresh_from_db()

    log_api_change(user, entry, CHANGE, "resolved: token=rsl_live_0123456789abcdef")
    LogEntry.objects.log_actions(user.pk, [entry], CHANGE, [{"changed": {"fields": ["notes"]},
                                                             "note": "password=hunter2hunter2"}])

    history = stored_history()
    assert not [secret for secret in SECRETS if secret in history], history
    newest = LogEntry.objects.order_by("-pk").first()
    assert json.loads(newest.change_message) == [{"changed": {"fields": ["notes"]}, "note": "password=[redacted]"}]
    assert newest.get_change_message().startswith("Changed notes.")


def test_an_ordinary_change_message_is_kept_as_the_admin_wrote_it(admin_client):
    entry = dead_probe()
    message = [{"changed": {"fields": ["Notes"]}}]
    LogEntry.objects.log_actions(User.objects.get(username="root").pk, [entry], CHANGE, message)
    assert LogEntry.objects.get().change_message == json.dumps(message)
    assert LogEntry.objects.get().object_repr == str(entry)
