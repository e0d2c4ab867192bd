"""The admin's history (django.contrib.admin LogEntry) for changes made through the API, so the
history page of an object shows every change, whichever door it came through."""
from __future__ import annotations

from django.contrib.admin.models import LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import models


def log_api_change(user: AbstractBaseUser, obj: models.Model, action_flag: int, message: str) -> LogEntry:
    """Record `message` on `obj` as done by `user` (a person, or an API token's service user).

    Call it in the transaction of the change, so the change and its record stand or fall together;
    for a deletion, with the object as it was (its pk still set).
    """
    return LogEntry.objects.log_actions(user.pk, [obj], action_flag, f"{message} (through the API)",
                                        single_object=True)
