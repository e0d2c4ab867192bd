"""Fixing what a dead job was refused for, then running it again: what the apps tell the dead-letter queue.

An app whose job carries its input (leads: the lead a source sent) registers a Corrector for its task:
the fields a person may correct, the input as it stands, the intake's own rules, and how to store the
corrected input where the job reads it. A job whose data holds only ids (a site for lead 5, message m)
has nothing here to correct: apps register which row each id names, and the entry's page links to it.
The dead-letter queue imports no app; apps register from their AppConfig.ready.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.urls import NoReverseMatch, reverse

from dlq.models import DeadLetter
from workers.models import Job


@dataclass(frozen=True)
class Corrector:
    task: str
    fields: tuple[str, ...]  # the fields a person may correct, in the form's order
    current: Callable[[DeadLetter], dict[str, Any] | None]  # the job's input now; None: it is gone
    problems: Callable[[dict[str, Any]], list[str]]  # the intake's rules; empty: acceptable
    store: Callable[[DeadLetter, dict[str, Any]], str]  # save it where the job reads it; says where
    # the corrected input from the original and the form's values (a blank value: the field left out)
    merge: Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]
    values: Callable[[dict[str, Any]], dict[str, Any]]  # each field's value in an input, for the form


_correctors: dict[str, Corrector] = {}
_id_rows: dict[str, tuple[str, str]] = {}  # payload key -> (model label, what to call it)


def corrector(entry: Corrector) -> None:
    _correctors[entry.task] = entry


def id_names_row(key: str, model: str, label: str) -> None:
    """A job's payload key `key` holds the primary key of a row of `model` ("app_label.ModelName")."""
    _id_rows[key] = (model, label)


def task_of(entry: DeadLetter) -> str | None:
    if not entry.job_id:
        return None
    try:
        return Job.objects.filter(pk=entry.job_id).values_list("task", flat=True).first()
    except Exception:  # a job id that is no UUID (an entry from the original system)
        return None


def corrector_for(entry: DeadLetter) -> Corrector | None:
    task = task_of(entry)
    return _correctors.get(task) if task else None


def rows_to_fix(entry: DeadLetter) -> list[tuple[str, str | None]]:
    """(what to call the row, its admin page or None) for every id the entry's job data holds."""
    found = []
    for key, value in sorted((entry.job_data or {}).items()):
        if key not in _id_rows or value in (None, ""):
            continue
        model_label, label = _id_rows[key]
        model = apps.get_model(model_label)
        try:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[value])
        except NoReverseMatch:
            url = None
        found.append((f"{label} {value}", url))
    return found
