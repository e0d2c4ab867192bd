"""What the webhook checks before it accepts a lead: the shape, field by field.

Content (is this a deliverable address? a real domain?) is judged by the lead-processing job, so
that one bad row never makes a source's whole batch bounce: it lands in the dead-letter queue with
its data, for a person to fix and requeue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leads.fields import ALIASES, EMPLOYEE_COUNT_MAX, MAX_LENGTH, pick

MAX_FIELDS = 200


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
    for field in ALIASES:
        key, value = pick(item, field)
        if key is None or value is None:
            continue
        if field == "employee_count" and isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                errors.append(FieldError(index, key, "must not be negative"))
            elif value > EMPLOYEE_COUNT_MAX:
                errors.append(FieldError(index, key, f"must be at most {EMPLOYEE_COUNT_MAX}"))
            continue
        if not isinstance(value, str):
            expected = "a string or a whole number" if field == "employee_count" else "a string"
            errors.append(FieldError(index, key, f"must be {expected}, got {_json_type(value)}"))
        elif len(value) > MAX_LENGTH[field]:
            errors.append(FieldError(index, key, f"is longer than {MAX_LENGTH[field]} characters"))
    key, email = pick(item, "email")
    if key is None or email is None or (isinstance(email, str) and not email.strip()):
        errors.append(FieldError(index, key or "email", "is required"))
    return errors


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
