"""What make chaos's SMTP sink refuses, planned from the generated leads before they are posted.

- `550 5.1.1` at RCPT, every try, for a few addresses of leads that will qualify: unknown mailboxes,
  so their outreach is dead-lettered at once and the address suppressed as a bounce.
- `421` at RCPT or a greylisting `451` after DATA on the first try only, for a seeded share of the
  other qualifying leads: each is retried and then delivered once.

Never a 5.7.x for all: that is ours, and the breaker would pause email for the rest of the run by
design (tests/system/test_email_failures.py proves the breaker). Qualification is predicted with the
code that decides it (normalize, score, threshold) from each original's own row: a repeat merged
later only fills missing fields, so it can raise a score, never lower it.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

NO_MAILBOX_REPLY = "550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table"
CONNECTIONS_REPLY = "421 4.7.0 Too many connections, try again later"
GREYLISTED_REPLY = "451 4.7.1 Greylisted, please try again later"
NO_MAILBOXES = 10
TEMPORARY_SHARE = 0.05  # of the other qualifying leads, for each of 421 and 451


@dataclass(frozen=True)
class SinkPlan:
    no_mailbox: frozenset[str] = field(default_factory=frozenset)
    at_rcpt_421: frozenset[str] = field(default_factory=frozenset)
    after_data_451: frozenset[str] = field(default_factory=frozenset)

    @property
    def temporary(self) -> frozenset[str]:
        return self.at_rcpt_421 | self.after_data_451


def predicted_qualified(planned: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The normalized addresses of the originals that qualify on their own row, in the plan's order."""
    from leads.models import Lead
    from leads.services import normalize_lead, score_lead, status_for

    found = []
    for kind, row in planned:
        if kind != "original":
            continue
        lead = normalize_lead(row)
        if status_for(score_lead(lead)) == Lead.Status.QUALIFIED:
            found.append(lead.email)
    return found


def plan_refusals(planned: list[tuple[str, dict[str, Any]]], rng: random.Random, *,
                  no_mailboxes: int = NO_MAILBOXES, temporary_share: float = TEMPORARY_SHARE) -> SinkPlan:
    qualified = predicted_qualified(planned)
    no_mailbox = set(rng.sample(qualified, min(no_mailboxes, len(qualified))))
    others = [a for a in qualified if a not in no_mailbox]
    n = int(len(others) * temporary_share)
    temporary = rng.sample(others, min(2 * n, len(others)))
    return SinkPlan(frozenset(no_mailbox), frozenset(temporary[:n]), frozenset(temporary[n:]))


def _exactly(addresses: frozenset[str]) -> str:
    # Addresses compare without case (the envelope carries the lead's normalized, lower-cased one).
    return r"(?i)^(?:" + "|".join(re.escape(a) for a in sorted(addresses)) + r")$"


def apply(sink, plan: SinkPlan) -> None:
    """Tell the sink (fakes/smtp.py) to refuse as planned."""
    if plan.no_mailbox:
        sink.refuse("rcpt", _exactly(plan.no_mailbox), NO_MAILBOX_REPLY)
    if plan.at_rcpt_421:
        sink.refuse("rcpt", _exactly(plan.at_rcpt_421), CONNECTIONS_REPLY, times=1)
    if plan.after_data_451:
        sink.refuse("data", _exactly(plan.after_data_451), GREYLISTED_REPLY, times=1)
