"""What the webhook checks before it accepts a lead: the shape, field by field.

Content (is this a deliverable address? a real domain?) is judged by the lead-processing job, so
that one bad row never makes a source's whole batch bounce: it lands in the dead-letter queue with
its data, for a person to fix and requeue.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from leads.fields import (ALIASES, EMPLOYEE_COUNT_MAX, EMPLOYEE_COUNT_PATTERN, MAX_LENGTH, NOT_BLANK_PATTERN,
                          pick)

MAX_FIELDS = 200
_EMPLOYEE_COUNT = re.compile(EMPLOYEE_COUNT_PATTERN)
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


@dataclass(frozen=True)
class FieldError:
    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


def validate_item(item: Any, index: int) -> list[FieldError]:
    if not isinstance(item, dict):
        return [FieldError(index, "", f"each lead must be a JSON object, got {_json_type(item)}")]
    if len(item) > MAX_FIELDS:
        return [FieldError(index, "", f"a lead may have at most {MAX_FIELDS} fields, got {len(item)}")]
    errors = []
    # Every name a field goes by is checked, not only the one used: the document declares each of them,
    # and a bad value under a second name is as much a mistake as under the first.
    for field, keys in ALIASES.items():
        for key in keys:
            value = item.get(key)
            if value is not None and (problem := _field_problem(field, value)):
                errors.append(FieldError(index, key, problem))
    key, email = pick(item, "email")
    if key is None or email is None or (isinstance(email, str) and not _NOT_BLANK.search(email)):
        errors.append(FieldError(index, key or "email", "is required"))
    return errors


def _field_problem(field: str, value: Any) -> str | None:
    if field == "employee_count":
        return _employee_count_problem(value)
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)}"
    if len(value) > MAX_LENGTH[field]:
        return f"is longer than {MAX_LENGTH[field]} characters"
    return None


def _employee_count_problem(value: Any) -> str | None:
    """A whole number (50, or 50.0 as JSON Schema counts it), or text in EMPLOYEE_COUNT_PATTERN."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return "must not be negative"
        if value > EMPLOYEE_COUNT_MAX:
            return f"must be at most {EMPLOYEE_COUNT_MAX}"
        return None
    if not isinstance(value, str):
        return f"must be a whole number or a string such as \"51-200\", got {_json_type(value)}"
    if len(value) > MAX_LENGTH["employee_count"]:
        return f"is longer than {MAX_LENGTH['employee_count']} characters"
    if not _EMPLOYEE_COUNT.fullmatch(value):
        return (f"must be a whole number, a count such as \"1,200\" or a band such as \"51-200\" or \"10,001+\", "
                f"got {value[:40]!r}")
    return None


def validate_batch(items: list[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        errors.extend(validate_item(item, index))
    return errors


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
