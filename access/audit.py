"""The admin's history (django.contrib.admin LogEntry) for changes made through the API, so the
history page of an object shows every change, whichever door it came through; and kept redacted, so
the history never stores a secret by value."""
from __future__ import annotations

import json
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models

from resilience.redaction import redact, redact_text

OBJECT_REPR_LENGTH = LogEntry._meta.get_field("object_repr").max_length


def redact_new_entry(sender: type[LogEntry], instance: LogEntry, **kwargs: Any) -> None:
    """post_init receiver: a history entry being made (no pk yet) has its object_repr and
    change_message redacted before anything can save it.

    At construction, not pre_save: the admin logs several objects at once (a deletion or an action on a
    selection) with bulk_create, which sends no pre_save; every way of making a row builds the model
    first. An entry read from the database has its pk and is left alone. What the admin writes there
    comes from an object's str() (a dead letter's error, a person's typed name) and from action messages.
    """
    if instance.pk is not None:
        return
    if instance.object_repr:
        instance.object_repr = redact_text(instance.object_repr)[:OBJECT_REPR_LENGTH]
    if instance.change_message:
        instance.change_message = _redacted_change_message(instance.change_message)


def _redacted_change_message(message: str) -> str:
    # The admin's own messages are JSON ([{"changed": {"fields": [...]}}]): redacted as data, so the
    # history page can still read them; anything else as text.
    try:
        parsed = json.loads(message)
    except ValueError:
        return redact_text(message)
    if not isinstance(parsed, (list, dict)):
        return redact_text(message)
    redacted = redact(parsed)
    return message if redacted == parsed else json.dumps(redacted)


def log_api_change(user: AbstractBaseUser, obj: models.Model, action_flag: int, message: str) -> LogEntry:
    """Record `message` on `obj` as done by `user` (a person, or an API token's service user).

    Call it in the transaction of the change, so the change and its record stand or fall together;
    for a deletion, with the object as it was (its pk still set).
    """
    return LogEntry.objects.log_actions(user.pk, [obj], action_flag, f"{message} (through the API)",
                                        single_object=True)
