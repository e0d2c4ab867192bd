"""The dead-letter queue's admin API: list, resolve, delete, requeue.

The JSON shapes are the original system's contract (snake_case entry fields; resolvedBy and jobId
in camelCase as it wrote them). The work is done by dlq.actions; these views only check input.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.contrib.admin.models import CHANGE, DELETION
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils.dateparse import parse_datetime
from django.http import HttpRequest, JsonResponse

from access.audit import log_api_change
from access.auth import Scope, admin_api
from dlq import actions
from dlq.models import DeadLetter
from resilience.http import ApiError, iso_utc, json_object_body
from resilience.redaction import redact_text

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RESOLVED_BY_MAX = DeadLetter._meta.get_field("resolved_by").max_length
# A resolver's name as a person reads it in the admin: no control, invisible or spacing characters other
# than the plain space (no bidi overrides that would show one name as another), not only spaces. One
# pattern for this view and the document (resilience/openapi.py), in a syntax Python's re and ECMA-262 share.
_NOT_SHOWN = ("\\u0000-\\u001f\\u007f-\\u00a0\\u00ad\\u061c\\u1680\\u180e\\u2000-\\u200f\\u2028-\\u202f"
              "\\u205f-\\u206f\\u3000\\ufeff\\ufff9-\\ufffb")
RESOLVED_BY_PATTERN = f"^[^{_NOT_SHOWN}]*[^ {_NOT_SHOWN}][^{_NOT_SHOWN}]*$"
_RESOLVED_BY = re.compile(RESOLVED_BY_PATTERN)
# Session callers need Django's model permission for what they do (tokens: the scope dlq to change).
VIEW, CHANGE_PERM, DELETE = "dlq.view_deadletter", "dlq.change_deadletter", "dlq.delete_deadletter"


def serialize_entry(entry: DeadLetter) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "queue_name": entry.queue_name,
        "job_id": entry.job_id,
        "job_data": entry.job_data,
        "error_message": entry.error_message,
        "error_stack": entry.error_stack,
        "attempts_made": entry.attempts_made,
        "failed_at": iso_utc(entry.failed_at),
        "resolved": entry.resolved,
        "resolved_at": iso_utc(entry.resolved_at),
        "resolved_by": entry.resolved_by,
        "notes": entry.notes,
    }


def queue_stats() -> dict[str, dict[str, int]]:
    """Per queue: total, resolved, unresolved. Every configured queue appears, with zeros if it
    never dead-lettered, so a dashboard need not guess the list; queues no longer configured but
    still holding entries appear too."""
    stats = {name: {"total": 0, "resolved": 0, "unresolved": 0} for name in settings.QUEUE_NAMES}
    rows = DeadLetter.objects.values("queue_name").annotate(
        total=Count("id"), resolved_count=Count("id", filter=Q(resolved=True))
    )
    for row in rows.order_by("queue_name"):
        stats[row["queue_name"]] = {
            "total": row["total"],
            "resolved": row["resolved_count"],
            "unresolved": row["total"] - row["resolved_count"],
        }
    return stats


def _entry_id(value: Any, where: str) -> uuid.UUID:
    if value is None or value == "":
        raise ApiError(400, f"{where} is required: the dead-letter entry's id (a UUID)")
    if not isinstance(value, str):
        raise ApiError(400, f"{where} must be a UUID string, got {type(value).__name__}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(400, f"{where} is not a valid UUID: {value[:100]!r}") from None


def _notes(body: dict[str, Any]) -> str | None:
    """The notes given, with any secret in them (a key that "was wrong") redacted: they are kept, shown
    in the admin and quoted in its history."""
    notes = _optional_text(body, "notes")
    return None if notes is None else redact_text(notes)


def _optional_text(body: dict[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise ApiError(400, f"{key} is longer than {max_length} characters")
    return value


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # Digits only: int() would also take " 5", "1_0" and other scripts' digits, which the document's
    # integer does not.
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", raw):
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw[:50]!r}")
    limit = int(raw)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    return limit


def _list(request: HttpRequest) -> JsonResponse:
    unresolved = DeadLetter.objects.filter(resolved=False)
    queue = request.GET.get("queue")
    if queue is not None:
        if "\x00" in queue:
            raise ApiError(400, "queue must not contain NUL characters")
        # A queue no longer configured may still hold entries: those stay reachable.
        if queue not in settings.QUEUE_NAMES and not DeadLetter.objects.filter(queue_name=queue).exists():
            raise ApiError(400, f"unknown queue {queue[:100]!r}; queues: {', '.join(settings.QUEUE_NAMES)}")
        unresolved = unresolved.filter(queue_name=queue)
    limit = _limit(request.GET.get("limit"))
    jobs = [serialize_entry(entry) for entry in unresolved.order_by("-failed_at", "-id")[:limit]]
    return JsonResponse({
        "success": True,
        "jobs": jobs,
        "count": len(jobs),
        "total": unresolved.count(),
        "stats": queue_stats(),
    })


def _patch(request: HttpRequest) -> JsonResponse:
    body = json_object_body(request)
    entry_id = _entry_id(body.get("id"), "id")
    if "resolved" not in body:
        raise ApiError(400, "resolved is required: true to resolve the entry, false to re-open it")
    resolved = body["resolved"]
    if not isinstance(resolved, bool):
        raise ApiError(400, f"resolved must be true or false, got {resolved!r}"[:200])
    resolver = _resolver(request, _optional_text(body, "resolvedBy", max_length=RESOLVED_BY_MAX))
    notes = _notes(body)
    try:
        with transaction.atomic():
            entry, changed = actions.set_resolved(entry_id, resolved=resolved, by=resolver, notes=notes)
            if changed:
                message = _change_message(resolved, changed, notes)
                if resolver != request.actor:
                    message = f"{message} (resolvedBy {resolver!r})"
                log_api_change(request.actor_user, entry, CHANGE, message)
    except actions.EntryNotFound as exc:
        raise ApiError(404, str(exc)) from None
    return JsonResponse({"success": True, "job": serialize_entry(entry)})


def _resolver(request: HttpRequest, resolved_by: str | None) -> str:
    """Who resolved it. A token acts for a service, and the original contract's scripts name the person
    in resolvedBy: that name is the resolver, and the history records the token that sent it. A
    logged-in person is the resolver themselves: a resolvedBy naming anyone else is refused."""
    if resolved_by is None or resolved_by == request.actor:
        return request.actor
    if request.actor_token is None:
        raise ApiError(400, f"resolvedBy is the caller ({request.actor!r}) for a logged-in person; it cannot "
                            f"name someone else ({resolved_by[:100]!r}): leave it out")
    if not _RESOLVED_BY.fullmatch(resolved_by):
        raise ApiError(400, "resolvedBy must name the person who resolved it: printable text, not empty")
    return redact_text(resolved_by.strip())


def _change_message(resolved: bool, changed: list[str], notes: str | None) -> str:
    """In the words of the admin's own actions ("Resolved: <notes>")."""
    if "resolved" in changed:
        verb = "Resolved" if resolved else "Re-opened"
        return f"{verb}: {notes}" if "notes" in changed and notes else verb
    return f"Changed notes: {notes}" if notes else "Cleared notes"


def _delete(request: HttpRequest) -> JsonResponse:
    entry_id = _entry_id(request.GET.get("id"), "the id query parameter")
    try:
        with transaction.atomic():
            entry = actions.delete(entry_id)
            log_api_change(request.actor_user, entry, DELETION, "Deleted")
    except actions.EntryNotFound as exc:
        raise ApiError(404, str(exc)) from None
    return JsonResponse({"success": True, "deleted": str(entry_id)})


@admin_api({"GET": VIEW, "PATCH": CHANGE_PERM, "DELETE": DELETE}, scope=Scope.DLQ)
def dead_letter_queue(request: HttpRequest) -> JsonResponse:
    handlers = {"GET": _list, "PATCH": _patch, "DELETE": _delete}
    return handlers[request.method](request)


@admin_api({"POST": CHANGE_PERM}, scope=Scope.DLQ)
def requeue(request: HttpRequest) -> JsonResponse:
    body = json_object_body(request)
    entry_id = _entry_id(body.get("id"), "id")
    notes = _notes(body) or ""
    try:
        with transaction.atomic():
            entry, job = actions.requeue(entry_id, by=request.actor, notes=notes)
            log_api_change(request.actor_user, entry, CHANGE, f"Requeued ledger job {job.id}")
    except actions.EntryNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except actions.Conflict as exc:
        raise ApiError(409, str(exc)) from None
    return JsonResponse({"success": True, "job": serialize_entry(entry), "jobId": str(job.id), "state": job.state})


BULK_ACTIONS = ("requeue", "resolve")
BULK_FIELDS = {"action", "queue", "error_contains", "failed_after", "failed_before", "notes", "dry_run"}


def _moment(body: dict[str, Any], key: str) -> datetime | None:
    raw = _optional_text(body, key, max_length=64)
    if raw is None:
        return None
    try:
        moment = parse_datetime(raw)
        # In UTC: PostgreSQL refuses a zone offset past 15:59 that Python accepts (up to 23:59), and
        # a moment at the calendar's edge may not exist in UTC at all (OverflowError).
        moment = moment.astimezone(dt_timezone.utc) if moment is not None and moment.tzinfo else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise ApiError(400, f"{key} must be an ISO 8601 date and time with its zone, such as "
                            f"2026-12-07T10:00:00Z; got {raw[:64]!r}")
    return moment


def bulk_selection(body: dict[str, Any]) -> QuerySet[DeadLetter]:
    """The unresolved entries the body's filter selects (every part optional, all must match)."""
    unknown = sorted(set(body) - BULK_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0][:50]!r}; the fields are: {', '.join(sorted(BULK_FIELDS))}")
    entries = DeadLetter.objects.filter(resolved=False)
    queue = _optional_text(body, "queue", max_length=100)
    if queue is not None:
        if queue not in settings.QUEUE_NAMES and not DeadLetter.objects.filter(queue_name=queue).exists():
            raise ApiError(400, f"unknown queue {queue[:100]!r}; queues: {', '.join(settings.QUEUE_NAMES)}")
        entries = entries.filter(queue_name=queue)
    contains = _optional_text(body, "error_contains", max_length=500)
    if contains is not None:
        if not contains.strip():
            raise ApiError(400, "error_contains must not be empty: leave it out to match every error")
        entries = entries.filter(error_message__icontains=contains)
    after, before = _moment(body, "failed_after"), _moment(body, "failed_before")
    if after is not None:
        entries = entries.filter(failed_at__gte=after)
    if before is not None:
        entries = entries.filter(failed_at__lt=before)
    return entries


@admin_api({"POST": CHANGE_PERM}, scope=Scope.DLQ)
def bulk(request: HttpRequest) -> JsonResponse:
    """Requeue or resolve every unresolved entry a filter selects, at most BULK_ACTION_MAX per request;
    dry_run answers the count only. Each entry acted on is written to the admin's history."""
    body = json_object_body(request)
    action = body.get("action")
    if action not in BULK_ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(BULK_ACTIONS)}; got {str(action)[:50]!r}")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, f"dry_run must be true or false, got {str(dry_run)[:50]!r}")
    notes = _notes(body)
    entries = bulk_selection(body)
    ids = list(entries.order_by("-failed_at", "-id").values_list("pk", flat=True)[:settings.BULK_ACTION_MAX + 1])
    if len(ids) > settings.BULK_ACTION_MAX:
        raise ApiError(409, f"the filter selects {entries.count()} unresolved entries; one request may act on at "
                            f"most {settings.BULK_ACTION_MAX} (BULK_ACTION_MAX): narrow the filter")
    answer: dict[str, Any] = {"success": True, "action": action, "matched": len(ids), "dry_run": dry_run}
    if dry_run:
        return JsonResponse(answer)
    if action == "resolve":
        with transaction.atomic():
            resolved = actions.resolve_many(ids, by=request.actor, notes=notes)
            for entry in resolved:
                log_api_change(request.actor_user, entry, CHANGE, "Resolved" + (f": {notes}" if notes else ""))
        answer.update(resolved=len(resolved), refused=[])
        return JsonResponse(answer)
    requeued, refused = 0, []
    for entry_id in ids:  # each in its own transaction: one refusal does not hold back the others
        try:
            with transaction.atomic():
                entry, job = actions.requeue(entry_id, by=request.actor, notes=notes or "")
                log_api_change(request.actor_user, entry, CHANGE, f"Requeued ledger job {job.id}")
            requeued += 1
        except actions.DlqActionError as exc:
            refused.append({"id": str(entry_id), "error": str(exc)})
    answer.update(requeued=requeued, refused=refused)
    return JsonResponse(answer)
