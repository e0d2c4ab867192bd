"""What people do with dead-letter entries: resolve (or re-open), requeue, delete.

Plain arguments, no request objects, so the API views and the admin actions share one path. Failures
are DlqActionError subclasses whose message is fit to show a person as it is.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from dlq.corrections import Corrector
from dlq.models import DeadLetter, DeadLetterCorrection
from resilience.redaction import redact
from workers import ledger
from workers.models import Job

# resolved_by's column width: an actor such as "token:<100-character name>" is cut to fit.
_RESOLVED_BY_MAX = DeadLetter._meta.get_field("resolved_by").max_length


class DlqActionError(Exception):
    """An action on a dead-letter entry was refused; str() says why."""


class EntryNotFound(DlqActionError):
    pass


class Conflict(DlqActionError):
    """The entry or its ledger job is not in a state the action can apply to."""


def _who(by: str) -> str:
    return by[:_RESOLVED_BY_MAX]


def _locked_entry(entry_id: uuid.UUID | str) -> DeadLetter:
    entry = DeadLetter.objects.select_for_update().filter(pk=entry_id).first()
    if entry is None:
        raise EntryNotFound(f"no dead-letter entry {entry_id}")
    return entry


def set_resolved(entry_id: uuid.UUID | str, *, resolved: bool, by: str,
                 notes: str | None = None) -> tuple[DeadLetter, list[str]]:
    """Resolve (resolved=True: resolved_at = now, resolved_by = `by`) or re-open (False: both cleared).

    An entry already in the asked state keeps its resolver and time (the first person to resolve
    it is the one the post-mortem needs); `notes`, when given, replace the notes either way.
    Returns the entry and the fields that changed (none: nothing to record in the history).
    """
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        fields = []
        if resolved and not entry.resolved:
            entry.resolved, entry.resolved_at, entry.resolved_by = True, timezone.now(), _who(by)
            fields += ["resolved", "resolved_at", "resolved_by"]
        elif not resolved and entry.resolved:
            entry.resolved, entry.resolved_at, entry.resolved_by = False, None, None
            fields += ["resolved", "resolved_at", "resolved_by"]
        if notes is not None and notes != entry.notes:
            entry.notes = notes
            fields.append("notes")
        if fields:
            entry.save(update_fields=fields)
    return entry, fields


def resolve_many(entry_ids: Iterable[uuid.UUID | str], *, by: str, notes: str | None = None) -> list[DeadLetter]:
    """Resolve every still-unresolved entry among `entry_ids`; returns the ones this call resolved.

    Entries resolved meanwhile (by someone else, or a requeue) are left as they are.
    """
    resolved = []
    with transaction.atomic():
        for entry in DeadLetter.objects.select_for_update().filter(pk__in=list(entry_ids), resolved=False):
            entry.resolved, entry.resolved_at, entry.resolved_by = True, timezone.now(), _who(by)
            fields = ["resolved", "resolved_at", "resolved_by"]
            if notes is not None:
                entry.notes = notes
                fields.append("notes")
            entry.save(update_fields=fields)
            resolved.append(entry)
    return resolved


def requeue_note(by: str, at: datetime, notes: str = "") -> str:
    line = f"Requeued by {by} at {at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"{line}\n{notes.strip()}" if notes and notes.strip() else line


def requeue(entry_id: uuid.UUID | str, *, by: str, notes: str = "") -> tuple[DeadLetter, Job]:
    """Put the entry's job back in its queue with fresh attempts and mark the entry resolved.

    One transaction: the entry is locked first, so two people requeuing the same entry at once
    requeue it once (the second finds it resolved); if anything is refused nothing changes.
    """
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        if entry.resolved:
            when = f" at {entry.resolved_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if entry.resolved_at else ""
            raise Conflict(f"entry {entry.pk} is already resolved (by {entry.resolved_by or 'someone'}{when})")
        try:
            job_id = uuid.UUID(entry.job_id or "")
        except ValueError:
            raise Conflict(f"entry {entry.pk} has no ledger job id ({entry.job_id!r}) to requeue") from None
        job = ledger.requeue_dead(str(job_id))
        if job is None:
            state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
            if state is None:
                raise Conflict(f"ledger job {job_id} no longer exists (pruned?); resolve the entry instead")
            raise Conflict(f"ledger job {job_id} is {state}, not dead: only a dead job can be requeued")
        now = timezone.now()
        entry.resolved, entry.resolved_at, entry.resolved_by = True, now, _who(by)
        entry.notes = requeue_note(by, now, notes)
        entry.save(update_fields=["resolved", "resolved_at", "resolved_by", "notes"])
    return entry, job


@dataclass
class RequeueOutcome:
    requeued: list[tuple[DeadLetter, Job]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (entry id, why)


def requeue_many(entry_ids: Iterable[uuid.UUID | str], *, by: str, notes: str = "") -> RequeueOutcome:
    """requeue() each entry in its own transaction: one refusal does not hold back the others."""
    outcome = RequeueOutcome()
    for entry_id in entry_ids:
        try:
            outcome.requeued.append(requeue(entry_id, by=by, notes=notes))
        except DlqActionError as exc:
            outcome.refused.append((str(entry_id), str(exc)))
    return outcome


def delete(entry_id: uuid.UUID | str) -> DeadLetter:
    """Delete the entry; returns it as it was (pk still set), for the caller's history record, which
    belongs in the same transaction."""
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        DeadLetter.objects.filter(pk=entry.pk).delete()  # not entry.delete(), which would clear its pk
    return entry


def correct_and_requeue(entry_id: uuid.UUID | str, corrector: Corrector, corrected: dict, *, by: str,
                        notes: str = "") -> tuple[DeadLetterCorrection, Job]:
    """Store the corrected input where the job reads it, keep the original beside it, and requeue
    the job: one transaction, so a refused requeue (resolved meanwhile, job not dead) keeps nothing.
    The caller has checked `corrected` with corrector.problems."""
    with transaction.atomic():
        entry = _locked_entry(entry_id)
        original = corrector.current(entry)
        if original is None:
            raise Conflict(f"entry {entry.pk}: the job's input no longer exists (pruned?); it cannot be corrected")
        try:
            stored_in = corrector.store(entry, corrected)
        except LookupError as exc:
            raise Conflict(f"entry {entry.pk}: {exc}") from None
        changed = sorted(key for key in set(original) | set(corrected) if original.get(key) != corrected.get(key))
        # As the job's input is kept: a secret typed into the form is kept and shown as REDACTED.
        correction = DeadLetterCorrection.objects.create(entry=entry, original=original, corrected=redact(corrected),
                                                         stored_in=stored_in, corrected_by=_who(by))
        line = f"Corrected {', '.join(changed) or 'nothing'} in {stored_in}"
        _, job = requeue(entry.pk, by=by, notes=f"{line}\n{notes}".strip())
    return correction, job
