"""Send fake leads through the webhook's intake path and watch the workers process them.

    python manage.py generate_test_leads 50                  # wait and print a summary
    python manage.py generate_test_leads 500 --no-wait --seed 7
"""
from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.db.models import Count

from leads.fake import make_fake_leads, plan_counts
from leads.models import LeadSubmission
from leads.services import accept_leads
from leads.validation import validate_batch

MAX_LEADS = 10_000
POLL_SECONDS = 0.5
SHOWN_ERRORS = 5
SOURCE = "generate_test_leads"
WORKERS_HINT = (
    "are the workers and the dispatcher running? (make up; .venv/bin/supervisorctl -c deploy/supervisord.conf status)"
)
Status = LeadSubmission.Status


class Command(BaseCommand):
    help = (
        "Queue N realistic fake leads through the same path as the Clay webhook, then wait for the workers "
        "and summarise what became of them. The same --seed run again repeats the same emails, so every "
        "lead of the second run merges into the first run's."
    )

    def add_arguments(self, parser) -> None:
        # Values are parsed in handle() so that a bad one is reported in one line, not argparse's usage block.
        parser.add_argument("count", metavar="N", help=f"how many leads, 1 to {MAX_LEADS}")
        parser.add_argument("--duplicates", default="0.1", metavar="FRACTION",
                            help="share of leads that repeat an earlier lead's email (default 0.1)")
        parser.add_argument("--invalid", default="0.05", metavar="FRACTION",
                            help="share of leads whose email processing rejects: they are dead-lettered "
                                 "(default 0.05)")
        parser.add_argument("--seed", default=None, metavar="INT", help="random seed, to repeat a batch")
        parser.add_argument("--no-wait", action="store_true", help="queue the leads and exit")
        parser.add_argument("--timeout", default="120", metavar="SECONDS",
                            help="how long to wait for processing (default 120)")

    def handle(self, *args: Any, **options: Any) -> None:
        count = _parse_number(options["count"], "N", int, minimum=1, maximum=MAX_LEADS)
        duplicates = _parse_number(options["duplicates"], "--duplicates", float, minimum=0, maximum=1)
        invalid = _parse_number(options["invalid"], "--invalid", float, minimum=0, maximum=1)
        timeout = _parse_number(options["timeout"], "--timeout", float, minimum=0.1)
        # Without --seed pick one anyway and print it, so an interesting batch can be made again.
        seed = (_parse_number(options["seed"], "--seed", int) if options["seed"] is not None
                else random.SystemRandom().randrange(1_000_000))
        try:
            n_duplicates, n_invalid = plan_counts(count, duplicates, invalid)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

        items = make_fake_leads(count, duplicates=duplicates, invalid=invalid, rng=random.Random(seed))
        errors = validate_batch(items)
        if errors:
            # The point of the command is to exercise the real path: data the webhook would refuse is our bug.
            first = errors[0]
            raise CommandError(f"{len(errors)} generated field(s) fail the webhook's validation, e.g. lead "
                               f"{first.index} {first.field!r}: {first.message} (a bug in leads/fake.py)")
        submissions = accept_leads(items, source=SOURCE)
        batch_id = submissions[0].batch_id
        self.stdout.write(f"Queued {count} test lead(s) ({n_duplicates} duplicate(s), {n_invalid} invalid) "
                          f"as batch {batch_id}, seed {seed}.")
        if options["no_wait"]:
            self.stdout.write(f"Not waiting: follow them in the admin under Leads > Lead submissions "
                              f"(source {SOURCE}).")
            return

        progress = ProgressBar(self.stderr, count)
        try:
            outcome = wait_for_batch(batch_id, count, timeout=timeout, on_progress=progress.draw)
        except KeyboardInterrupt:
            progress.finish()
            self.stderr.write(f"Stopped waiting; the jobs keep running (batch {batch_id}).", style_func=_plain)
            raise SystemExit(130) from None
        progress.finish()

        for line in format_summary(outcome, count, failures=dead_letter_errors(batch_id)):
            self.stdout.write(line)
        if not outcome.finished:
            waiting = outcome.counts.get(Status.RECEIVED, 0)
            raise CommandError(f"{waiting} of {count} lead(s) still waiting after {timeout:g}s: {WORKERS_HINT}")


def _plain(text: str) -> str:
    return text


def _parse_number(raw: Any, name: str, kind: type[int] | type[float], *, minimum: float | None = None,
                  maximum: float | None = None) -> Any:
    """The value of an argument, or CommandError naming it and saying what it must be."""
    wanted = "a whole number" if kind is int else "a number"
    if minimum is not None and maximum is not None:
        wanted += f" from {minimum:g} to {maximum:g}"
    elif minimum is not None:
        wanted += f" of at least {minimum:g}"
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise CommandError(f"{name} must be {wanted}, got {raw!r}") from None
    if kind is float and value != value:  # NaN compares false with every bound
        raise CommandError(f"{name} must be {wanted}, got {raw!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise CommandError(f"{name} must be {wanted}, got {raw!r}")
    return value


# --- waiting ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchOutcome:
    counts: dict[str, int]  # submission status -> how many
    elapsed: float
    finished: bool

    @property
    def processed(self) -> int:
        return sum(n for status, n in self.counts.items() if status != Status.RECEIVED)


def batch_counts(batch_id: uuid.UUID) -> dict[str, int]:
    rows = LeadSubmission.objects.filter(batch_id=batch_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def wait_for_batch(batch_id: uuid.UUID, total: int, *, timeout: float,
                   on_progress: Callable[[int, float], None] = lambda done, elapsed: None,
                   poll_seconds: float = POLL_SECONDS, clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> BatchOutcome:
    """Poll the batch's submissions until none is `received` any more, or `timeout` seconds pass.

    A submission leaves `received` when its job succeeds (qualified, disqualified, duplicate) or is
    dead-lettered (failed); a job waiting to retry keeps it `received`, so it is still counted as waiting.
    """
    started = clock()
    while True:
        counts = batch_counts(batch_id)
        elapsed = clock() - started
        outcome = BatchOutcome(counts, elapsed, finished=counts.get(Status.RECEIVED, 0) == 0)
        on_progress(outcome.processed, elapsed)
        if outcome.finished or elapsed >= timeout:
            return outcome
        sleep(min(poll_seconds, timeout - elapsed))


class ProgressBar:
    """`[########------------] 12/20 processed  3.1s` on stderr: redrawn in place on a terminal,
    otherwise one line every few seconds so logs and CI output stay readable."""

    width = 20
    line_every_seconds = 5.0

    def __init__(self, out: OutputWrapper, total: int, *, interactive: bool | None = None) -> None:
        self.out = out
        self.total = total
        self.interactive = out.isatty() if interactive is None else interactive
        self.last_line_at: float | None = None
        self.drawn_inline = False

    def render(self, done: int, elapsed: float) -> str:
        filled = self.width * done // self.total if self.total else self.width
        return f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total} processed  {elapsed:.1f}s"

    def draw(self, done: int, elapsed: float) -> None:
        if self.interactive:
            self._write("\r" + self.render(done, elapsed))
            self.drawn_inline = True
        elif self.last_line_at is None or elapsed - self.last_line_at >= self.line_every_seconds or done == self.total:
            self._write(self.render(done, elapsed) + "\n")
            self.last_line_at = elapsed

    def finish(self) -> None:
        """End the line being redrawn, so what follows starts on a fresh one."""
        if self.drawn_inline:
            self._write("\n")
            self.drawn_inline = False

    def _write(self, text: str) -> None:
        # By default OutputWrapper adds a newline and colours stderr red on a terminal: neither suits a bar.
        self.out.write(text, style_func=_plain, ending="")
        self.out.flush()


# --- summary ---------------------------------------------------------------------------------------

SUMMARY_ROWS = (
    (Status.QUALIFIED, "qualified"),
    (Status.DISQUALIFIED, "disqualified"),
    (Status.DUPLICATE, "merged (duplicate)"),
    (Status.FAILED, "dead-lettered"),
)


def dead_letter_errors(batch_id: uuid.UUID, limit: int = SHOWN_ERRORS) -> list[tuple[int, str]]:
    """(submission id, error) of the batch's first dead-lettered leads."""
    return list(
        LeadSubmission.objects.filter(batch_id=batch_id, status=Status.FAILED)
        .order_by("pk").values_list("pk", "error")[:limit]
    )


def format_summary(outcome: BatchOutcome, total: int, *, failures: list[tuple[int, str]]) -> list[str]:
    verb = "Done" if outcome.finished else "Timed out"
    lines = [f"{verb}: {outcome.processed}/{total} lead(s) processed in {outcome.elapsed:.1f}s"]
    lines += [f"  {label:<20}{outcome.counts.get(status, 0):>6}" for status, label in SUMMARY_ROWS]
    waiting = outcome.counts.get(Status.RECEIVED, 0)
    if waiting:
        lines.append(f"  {'still waiting':<20}{waiting:>6}   (their jobs stay queued and will run when workers do)")
    n_failed = outcome.counts.get(Status.FAILED, 0)
    if failures:
        lines.append("Dead-lettered leads (their data and errors are in the dead-letter queue in the admin):")
        lines += [f"  submission {pk}: {error}" for pk, error in failures]
        if n_failed > len(failures):
            lines.append(f"  ... and {n_failed - len(failures)} more")
    return lines
