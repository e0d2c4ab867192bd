"""The addresses not to write to: the one way in (suppress) and the one question (is_suppressed).

What each reason stops:
- bounce (the mailbox refused: 5.1.x / 5.2.x, a provider's hard bounce), complaint (the recipient marked
  our mail as spam) and manual (a person said so): ALL mail, transactional included. Mail to a dead
  mailbox only bounces again, and mail after a complaint, of any kind, is what providers punish.
- unsubscribe: marketing mail only (outreach, campaigns). A handover the lead is waiting for is not
  marketing, and the unsubscribe link is in marketing mail only.

Rows are one per (address, reason) and are facts: suppressing again returns the first row unchanged,
so a provider that re-posts an event, or a bounce seen twice, changes nothing. Removing a row (the
admin, logged in its history) is how a person lets mail go to that address again.
"""
from __future__ import annotations

import csv
import io
import logging
import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet

from emails.models import Suppression

logger = logging.getLogger(__name__)
Reason = Suppression.Reason

REASONS = tuple(Reason.values)
STOPS_ALL_MAIL = (Reason.BOUNCE, Reason.COMPLAINT, Reason.MANUAL)
DETAIL_CHARS = 2000


def normalise(address: str) -> str:
    """The form every row is stored and looked up in. Raises ValueError for what is not an address."""
    email = (address or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValueError(f"not an email address: {address!r}") from None
    return email


def suppress(address: str, reason: str, *, message_id: uuid.UUID | None = None, event_id: str = "",
             detail: str = "", by: str = "") -> Suppression:
    """Stop mail to `address` for `reason` ("bounce", "complaint", "unsubscribe", "manual"), noting the
    message or the provider's event it came from, the server's or provider's words (`detail`) and who
    (`by`: "smtp", a provider's name, a person's username). Idempotent per (address, reason): the first
    row is kept and returned. Joins the caller's transaction. Raises ValueError for an unknown reason
    or an address that is not one."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}; the reasons are {', '.join(REASONS)}")
    email = normalise(address)
    existing = Suppression.objects.filter(email=email, reason=reason).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():  # a savepoint: a concurrent suppress of the same pair loses cleanly
            row = Suppression.objects.create(email=email, reason=reason, message_id=message_id,
                                             event_id=(event_id or "")[:255], detail=(detail or "")[:DETAIL_CHARS],
                                             by=(by or "")[:150])
    except IntegrityError:
        return Suppression.objects.get(email=email, reason=reason)
    logger.info("suppressed %s (%s) by %s", email, reason, by or "unknown")
    return row


def _stopping(marketing: bool) -> tuple[str, ...]:
    return (*STOPS_ALL_MAIL, Reason.UNSUBSCRIBE) if marketing else STOPS_ALL_MAIL


def suppressed_among(addresses: list[str], *, marketing: bool) -> set[str]:
    """Of `addresses` (as given), those mail of this kind must not go to."""
    by_form: dict[str, list[str]] = {}
    for address in addresses:
        by_form.setdefault((address or "").strip().lower(), []).append(address)
    found = Suppression.objects.filter(email__in=list(by_form), reason__in=_stopping(marketing)).values_list(
        "email", flat=True)
    return {address for email in found for address in by_form[email]}


def is_suppressed(address: str, *, marketing: bool) -> bool:
    """Must mail of this kind (marketing: outreach, campaigns; or not: transactional) not go to `address`?"""
    return bool(suppressed_among([address], marketing=marketing))


def counts() -> dict[str, int]:
    """Rows per reason, and the distinct addresses stopped (an address may have several reasons)."""
    rows = dict(Suppression.objects.values_list("reason").annotate(n=Count("id")).values_list("reason", "n"))
    figures = {reason: rows.get(reason, 0) for reason in REASONS}
    figures["addresses"] = Suppression.objects.values("email").distinct().count()
    return figures


# --- CSV -------------------------------------------------------------------------------------------

CSV_COLUMNS = ("email", "reason", "created_at", "message_id", "event_id", "detail", "by")
# A spreadsheet runs a cell that starts with one of these as a formula; `detail` holds a remote
# server's words and an address may start with "=": exported cells are quoted with a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
IMPORT_MAX_BYTES = 5 * 1024 * 1024
BAD_ROWS_KEPT = 100


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _uncell(text: str) -> str:
    text = (text or "").strip()
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def export_csv(rows: QuerySet[Suppression], out: io.TextIOBase) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for row in rows.order_by("email", "reason").iterator():
        writer.writerow([_cell(v) for v in (row.email, row.reason, row.created_at.isoformat(), row.message_id or "",
                                            row.event_id, row.detail, row.by)])
        n += 1
    return n


@dataclass
class ImportReport:
    added: int = 0
    added_ids: list[int] = field(default_factory=list)
    already: int = 0  # that address already had that reason
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, why), the first BAD_ROWS_KEPT
    bad_total: int = 0
    error: str = ""  # the whole file was refused: nothing imported

    def refuse(self, line: int, why: str) -> None:
        self.bad_total += 1
        if len(self.bad) < BAD_ROWS_KEPT:
            self.bad.append((line, why))


def import_csv(data: bytes, *, by: str) -> ImportReport:
    """Suppress every good row of a CSV with a header naming at least `email` (and optionally `reason`,
    "manual" when empty, and `detail`; the export's other columns are ignored: the rows are new facts
    here, by `by`). Bad rows are reported by line and skipped; a file that is not CSV, not UTF-8,
    too large or has no `email` column imports nothing. Never raises for what the file holds."""
    report = ImportReport()
    if len(data) > IMPORT_MAX_BYTES:
        report.error = f"the file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB"
        return report
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.error = f"the file is not UTF-8 text (byte {exc.start})"
        return report
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
        if "email" not in columns:
            report.error = "the first line must name the columns, one of them `email`"
            return report
        reader.fieldnames = columns
        with transaction.atomic():
            for row in reader:
                _import_row(row, reader.line_num, report, by)
    except csv.Error as exc:
        report.error = f"not a CSV file: {exc}"
        report.added = report.already = 0
        report.added_ids = []
    return report


def _import_row(row: dict[str, str | list | None], line: int, report: ImportReport, by: str) -> None:
    def value(name: str) -> str:
        cell = row.get(name)
        return _uncell(cell) if isinstance(cell, str) else ""

    if None in row:  # more cells than the header names
        report.refuse(line, "more cells than the header has columns")
        return
    email, reason = value("email"), value("reason").lower() or Reason.MANUAL
    if not email:
        report.refuse(line, "no email")
        return
    if reason not in REASONS:
        report.refuse(line, f"unknown reason {reason[:40]!r} (one of {', '.join(REASONS)})")
        return
    try:
        normalised = normalise(email)
    except ValueError:
        report.refuse(line, f"not an email address: {email[:80]!r}")
        return
    if Suppression.objects.filter(email=normalised, reason=reason).exists():
        report.already += 1
        return
    report.added_ids.append(suppress(normalised, reason, detail=value("detail"), by=by).pk)
    report.added += 1
