"""What make chaos verifies once every lead and job has reached its final state: one function per line
of issue 13's list, each reading the database (and what the run saw: the sink's messages, the logs,
the generator's plan, the fake Anthropic API's journal) and returning a Check, PASS or FAIL with its
figures. The AI checks (issue 17) count at the fake: its journal of every answer it handed out is the
independent record; the books (sites.models.AiRequest) are what is checked against it.

They take their inputs as arguments so that tests/chaos/test_checks.py can feed them a violating
ledger, sink or log and see each one fail.
"""
from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import getaddresses
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from chaos.mail import SinkPlan
from dlq.models import DeadLetter
from emails.models import Message
from leads.models import Lead, LeadSubmission
from sites.models import Site
from workers import ratelimit
from workers.models import Job, JobFailure
from workers.ratelimit import busiest_window, ledger_starts, started_without_a_slot

FINAL = (Job.State.SUCCEEDED, Job.State.DEAD)
UNFINISHED = (Job.State.PENDING, Job.State.DISPATCHED, Job.State.RUNNING, Job.State.RETRY)
SUBMISSION_FINAL = (LeadSubmission.Status.QUALIFIED, LeadSubmission.Status.DISQUALIFIED,
                    LeadSubmission.Status.DUPLICATE, LeadSubmission.Status.FAILED)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figures: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.figures}"


def _few(items, n: int = 5) -> str:
    items = sorted(str(i) for i in items)
    return ", ".join(items[:n]) + (f" ... ({len(items)} in all)" if len(items) > n else "")


def _examples(*labelled: tuple[str, Any]) -> str:
    """ (label: a few of them) for each non-empty collection, to end a line's figures with."""
    return "".join(f" ({label}: {_few(items)})" for label, items in labelled if items)


def leads_final(lead_job_ids: list[str]) -> Check:
    """Every lead posted has its lead-processing job in the ledger, finished, and its submission in a
    final status (qualified, disqualified, merged as a duplicate, or dead-lettered)."""
    jobs = dict(Job.objects.filter(id__in=lead_job_ids).values_list("id", "state"))
    jobs = {str(k): v for k, v in jobs.items()}
    missing = [j for j in lead_job_ids if j not in jobs]
    unfinished = [j for j, state in jobs.items() if state not in FINAL]
    statuses = Counter(LeadSubmission.objects.filter(job_id__in=lead_job_ids).values_list("status", flat=True))
    not_final = sum(n for status, n in statuses.items() if status not in SUBMISSION_FINAL)
    submissions = sum(statuses.values())
    ok = not missing and not unfinished and not_final == 0 and submissions == len(set(lead_job_ids))
    figures = (f"{len(set(lead_job_ids))} leads posted, {len(jobs)} jobs in the ledger, {len(unfinished)} unfinished; "
               f"submissions {dict(sorted(statuses.items()))}")
    if missing:
        figures += f"; jobs missing: {_few(missing)}"
    if unfinished:
        figures += f"; unfinished: {_few(unfinished)}"
    return Check("every lead final", ok, figures)


def jobs_final() -> Check:
    """No job lost or stuck: nothing pending, waiting for a retry, dispatched or running; every
    qualified lead has its site-generation job, every outreach message its email job."""
    by_state = Counter()
    for row in Job.objects.values("queue", "state").annotate(n=Count("id")):
        by_state[(row["queue"], row["state"])] += row["n"]
    stuck = {f"{q} {s}": n for (q, s), n in by_state.items() if s in UNFINISHED}
    qualified = set(Lead.objects.filter(status=Lead.Status.QUALIFIED).values_list("id", flat=True))
    site_jobs = {p.get("lead_id") for p in Job.objects.filter(queue="site-generation").values_list("payload", flat=True)}
    no_site_job = qualified - site_jobs
    outreach = set(Message.objects.filter(kind="outreach").values_list("id", flat=True))
    email_jobs = {p.get("message_id") for p in Job.objects.filter(queue="email-sending").values_list("payload", flat=True)}
    no_email_job = {m for m in outreach if str(m) not in email_jobs}
    ok = not stuck and not no_site_job and not no_email_job
    totals = Counter()
    for (q, s), n in by_state.items():
        totals[q] += n
    figures = (f"{sum(totals.values())} jobs ({', '.join(f'{q} {n}' for q, n in sorted(totals.items()))}); "
               f"unfinished {sum(stuck.values())}{' ' + str(stuck) if stuck else ''}; "
               f"qualified leads without a site job {len(no_site_job)}, outreach messages without a send job "
               f"{len(no_email_job)}")
    return Check("no job lost or stuck, nothing running or dispatched", ok, figures)


def recipients(sink_messages) -> Counter:
    """Messages per address (lower-cased) among those the SMTP sink accepted, from their To headers."""
    counts: Counter = Counter()
    for message in sink_messages:
        for _, address in getaddresses([str(message["To"] or "")]):
            counts[address.lower()] += 1
    return counts


def sites_and_emails(sink_counts: Counter, no_mailbox: frozenset[str] = frozenset()) -> Check:
    """Every qualified lead: exactly one site (database) and exactly one email at the SMTP sink (the
    sink's count, not the database's), except the addresses the sink refused as unknown mailboxes
    (`no_mailbox`): a site and no email; and no email, no site for anyone else."""
    qualified = dict(Lead.objects.filter(status=Lead.Status.QUALIFIED).values_list("id", "email"))
    sites = Counter(Site.objects.values_list("lead_id", flat=True))
    wrong_sites = {lead: sites.get(lead, 0) for lead in qualified if sites.get(lead, 0) != 1}
    stray_sites = sum(n for lead, n in sites.items() if lead not in qualified)
    addresses = {email.lower() for email in qualified.values()}
    refused = {email.lower() for email in no_mailbox} & addresses
    wanted = addresses - refused
    wrong_mail = {email: sink_counts.get(email, 0) for email in wanted if sink_counts.get(email, 0) != 1}
    refused_mail = {email: sink_counts[email] for email in refused if sink_counts.get(email, 0)}
    stray_mail = {email: n for email, n in sink_counts.items() if email not in addresses}
    ok = not wrong_sites and not stray_sites and not wrong_mail and not refused_mail and not stray_mail
    figures = (f"{len(qualified)} qualified leads, {sum(sites.values())} sites, {sum(sink_counts.values())} emails "
               f"at the sink to {len(sink_counts)} addresses; leads without exactly one site {len(wrong_sites)}; "
               f"of the {len(wanted)} not refused, without exactly one email {len(wrong_mail)}; of the "
               f"{len(refused)} refused as unknown mailboxes (a site, no email), with an email {len(refused_mail)}; "
               f"sites of other leads {stray_sites}, emails to other addresses {sum(stray_mail.values())}")
    figures += _examples(("not exactly one", [f"{e}={n}" for e, n in wrong_mail.items()]),
                         ("refused, yet received", [f"{e}={n}" for e, n in refused_mail.items()]),
                         ("to others", stray_mail))
    return Check("each qualified lead: one site, one email at the SMTP sink (none to a refused mailbox)", ok, figures)


def _bounce_jobs(no_mailbox: frozenset[str]) -> dict[str, str]:
    """The send job ids of the messages to the refused mailboxes -> their address."""
    messages = {str(m): e.lower() for m, e in Message.objects.filter(
        to_email__in=list(no_mailbox)).values_list("id", "to_email")}
    return {str(j): messages[p["message_id"]] for j, p in Job.objects.filter(
        queue="email-sending").values_list("id", "payload") if p.get("message_id") in messages}


def dead_letters(invalid_job_ids: set[str], no_mailbox: frozenset[str] = frozenset()) -> Check:
    """The dead-letter queue holds exactly the leads generated invalid on purpose and, for each address
    the sink refused as an unknown mailbox, one send job of its message (a bounce is dead-lettered at
    once): nothing else (no lead, site or email job killed into it), none of them missing."""
    entries = Counter(DeadLetter.objects.values_list("job_id", flat=True))
    entered = set(entries)
    bounce_jobs = _bounce_jobs(no_mailbox)
    per_address = Counter(bounce_jobs[j] for j in entered if j in bounce_jobs)
    unexpected = entered - invalid_job_ids - set(bounce_jobs)
    missing = invalid_job_ids - entered
    bounces_missing = {a for a in no_mailbox if per_address.get(a.lower(), 0) != 1}
    twice = {j for j, n in entries.items() if n > 1}
    ok = not unexpected and not missing and not bounces_missing and not twice
    by_queue = Counter(DeadLetter.objects.values_list("queue_name", flat=True))
    figures = (f"{sum(entries.values())} entries {dict(sorted(by_queue.items()))}, expected {len(invalid_job_ids)} "
               f"leads invalid on purpose + {len(no_mailbox)} outreach messages to unknown mailboxes; unexpected "
               f"{len(unexpected)}, missing {len(missing)}, refused mailboxes without exactly one "
               f"{len(bounces_missing)}, twice {len(twice)}")
    if unexpected:
        errors = DeadLetter.objects.filter(job_id__in=list(unexpected)).values_list("queue_name", "error_message")[:3]
        figures += " (e.g. " + "; ".join(f"{q}: {e[:120]}" for q, e in errors) + ")"
    if bounces_missing:
        figures += f" (e.g. {_few(bounces_missing)})"
    return Check("dead-letter entries only for the leads made invalid and the refused mailboxes", ok, figures)


# --- what the SMTP sink refused (chaos/mail.py's plan) --------------------------------------------

def refused_mailboxes(no_mailbox: frozenset[str], sink_counts: Counter) -> Check:
    """Every address the sink refused as an unknown mailbox is a qualified lead's, received nothing, and
    is suppressed once, reason `bounce`, from its own message with the server's words; nobody else is
    suppressed; and the breaker never tripped (a mailbox's refusal is not ours)."""
    from emails.models import BreakerTrip, Suppression

    refused = {a.lower() for a in no_mailbox}
    qualified = set(Lead.objects.filter(status=Lead.Status.QUALIFIED, email__in=list(refused)).values_list(
        "email", flat=True))
    received = {a: sink_counts[a] for a in refused if sink_counts.get(a, 0)}
    messages = dict(Message.objects.filter(to_email__in=list(refused), kind=Message.Kind.OUTREACH).values_list(
        "to_email", "id"))
    rows = list(Suppression.objects.values_list("email", "reason", "message_id", "detail"))
    right = Counter(e for e, reason, message, detail in rows
                    if e in refused and reason == "bounce" and message == messages.get(e) and "5.1.1" in detail)
    not_suppressed = {a for a in refused if right.get(a, 0) != 1}
    others = [f"{e} {reason}" for e, reason, message, detail in rows
              if e not in refused or reason != "bounce" or message != messages.get(e) or "5.1.1" not in detail]
    trips = BreakerTrip.objects.count()
    ok = bool(refused) and qualified == refused and not received and not not_suppressed and not others and not trips
    figures = (f"{len(refused)} addresses refused 550 5.1.1 at RCPT, {len(qualified)} of them qualified leads; "
               f"received {sum(received.values())}; suppressed bounce from their message {sum(right.values())}, "
               f"without exactly that row {len(not_suppressed)}; other suppressions {len(others)}; breaker trips "
               f"{trips}")
    figures += _examples(("not qualified", refused - qualified), ("received", received),
                         ("not suppressed", not_suppressed), ("other", others))
    return Check("unknown mailboxes: nothing received, suppressed bounce, nobody else", ok, figures)


def temporary_refusals(sink_refused: list[tuple[str, str, str]], planned: frozenset[str],
                       no_mailbox: frozenset[str], sink_counts: Counter) -> Check:
    """The sink's own record of what it refused (phase, address, reply): the planned qualified leads got a
    4xx on a first try (421 at RCPT, 451 after DATA) and each then received exactly one message (the
    retry happened, once); every other refusal is the 550 5.1.1 of a refused mailbox."""
    temporary = [(phase, a.lower(), reply) for phase, a, reply in sink_refused if reply.startswith("4")]
    refused_mailbox = {a.lower() for a in no_mailbox}
    unexpected = [f"{phase} {a}: {reply[:40]}" for phase, a, reply in sink_refused
                  if not reply.startswith("4") and not (a.lower() in refused_mailbox and reply.startswith("550 5.1.1"))]
    qualified = set(Lead.objects.filter(status=Lead.Status.QUALIFIED).values_list("email", flat=True))
    wanted = {a.lower() for a in planned} & qualified
    hit = {a for _, a, _ in temporary}
    never_refused = wanted - hit
    not_once = {f"{a}={sink_counts.get(a, 0)}" for a in hit if sink_counts.get(a, 0) != 1}
    kinds = Counter(f"{reply[:3]} after DATA" if phase == "data" else f"{reply[:3]} at RCPT"
                    for phase, _, reply in temporary)
    ok = bool(wanted) and not never_refused and not not_once and not unexpected
    figures = (f"{len(temporary)} refused for now ({dict(sorted(kinds.items()))}) to {len(hit)} addresses, "
               f"{len(wanted)} qualified leads planned; planned never refused {len(never_refused)}, refused for now "
               f"and not then received exactly once {len(not_once)}; other refusals {len(unexpected)} (the 5.1.1 "
               f"of the {len(refused_mailbox)} unknown mailboxes: "
               f"{sum(1 for _, a, r in sink_refused if a.lower() in refused_mailbox and r.startswith('550'))})")
    figures += _examples(("never refused", never_refused), ("not once", not_once), ("other", unexpected))
    return Check("421/451 on first tries: retried, then received exactly once", ok, figures)


def messages_settled() -> Check:
    """No message is left pending, sending or unknown: every send has reached its end."""
    statuses = Counter(Message.objects.values_list("status", flat=True))
    open_ = {s: statuses[s] for s in ("pending", "sending", "unknown") if statuses.get(s)}
    return Check("no message pending, sending or unknown", not open_,
                 f"{sum(statuses.values())} messages {dict(sorted(statuses.items()))}")


def rate_limits(limits: dict[str, tuple[int, float] | None],
                limiter_log: dict[str, list[float]] | None = None) -> Check:
    """No more starts than the limit in any window of its period, for every queue, counted from the
    ledger's record of each slot the limiter gave (limits: queue -> (count, period seconds), as
    configured for the run), and no job of a limited queue succeeded without one. limiter_log: the
    starts the limiter itself logged in Redis, when the run sampled them, shown beside (a second
    witness, not the judge: a Redis restart loses its last moments)."""
    parts, ok = [], True
    for queue, limit in sorted(limits.items()):
        starts = ledger_starts(queue)
        if limit is None:
            parts.append(f"{queue} unlimited, {len(starts)} starts")
            continue
        count, period = limit
        most, at = busiest_window(starts, period)
        unslotted = started_without_a_slot(queue)
        ok = ok and most <= count and unslotted == 0
        part = f"{queue} {count}/{period:g}s: most {most} in {len(starts)} starts"
        if unslotted:
            part += f", {unslotted} succeeded without a slot"
        if most > count:
            part += f" (the window from {datetime.fromtimestamp(at, UTC):%H:%M:%S.%f} UTC)"
        if limiter_log is not None:
            part += f", limiter's log most {ratelimit.max_starts_in_any_window(limiter_log.get(queue, []), period)}"
        parts.append(part)
    return Check("no more starts than the limit in any window (ledger)", ok, "; ".join(parts))


# --- AI spend, counted at the fake Anthropic API --------------------------------------------------

CENT = Decimal("0.01")
_MILLION = Decimal(1_000_000)
# Journal kinds (fakes/anthropic.py): the answers with a valid site in them.
VALID_KINDS = ("valid", "slow")
# Most answers handed out but not on the books (the window) a run may have. Each needs a death at the
# wrong moment: a network worker SIGKILLed while it waited for an answer (about 15 such kills a run, each
# taking the requests it had in flight, about 0.3 at the fake's latency) or between an answer's arrival
# and its record's commit (milliseconds), or PostgreSQL stopped with answers on the way (at most the
# in-flight bound, 6). Twice the expected count: more means answers are lost outside that window.
WINDOW_MAX = 12
# A request reaches the fake a little after its budget check read the books (the SDK builds it, the
# loopback carries it): one that arrived this soon after the books crossed was checked before.
CHECK_TO_ARRIVAL_SECONDS = 1.0


def paid_answers(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journal's answers the API bills: a 200 with usage (a malformed one too)."""
    return [e for e in journal if e["status"] == 200 and e.get("usage")]


def answer_cost(entry: dict[str, Any], prices: dict[str, tuple]) -> Decimal:
    """Usage x prices per million, in Decimal, from the fake's own usage: counted here, not by
    sites.services.cost_of, which is the code under test."""
    usage = entry["usage"]
    p_in, p_out, p_write, p_read = (Decimal(p) for p in prices[entry["model"]])
    return (usage.get("input_tokens", 0) * p_in + usage.get("output_tokens", 0) * p_out
            + (usage.get("cache_creation_input_tokens") or 0) * p_write
            + (usage.get("cache_read_input_tokens") or 0) * p_read) / _MILLION


def book_rows() -> list[dict[str, Any]]:
    """The books: every non-mock AiRequest row (mock rows never count as spend)."""
    from sites.models import AiRequest

    return [{**row, "job_id": str(row["job_id"]) if row["job_id"] else None,
             "created_at": row["created_at"].timestamp()}
            for row in AiRequest.objects.filter(mock=False).values(
                "request_id", "message_id", "job_id", "outcome", "model", "input_tokens", "output_tokens",
                "cache_write_tokens", "cache_read_tokens", "cost_usd", "created_at")]


def _job_of(entry: dict[str, Any]) -> str:
    """The job a request was for, from its Idempotency-Key (job-<uuid>, job-<uuid>:again)."""
    return (entry.get("idempotency_key") or "").removesuffix(":again").removeprefix("job-")


def _disagreement(entry: dict[str, Any], row: dict[str, Any], cost: Decimal) -> str:
    """How a book row differs from the answer the fake handed out ("" when it does not)."""
    usage = entry["usage"]
    fake = (usage.get("input_tokens", 0), usage.get("output_tokens", 0),
            usage.get("cache_creation_input_tokens") or 0, usage.get("cache_read_input_tokens") or 0)
    books = (row["input_tokens"], row["output_tokens"], row["cache_write_tokens"], row["cache_read_tokens"])
    problems = []
    if fake != books:
        problems.append(f"tokens {books} at the books, {fake} at the fake")
    if row["cost_usd"] != cost:
        problems.append(f"cost ${row['cost_usd']} at the books, ${cost} at the fake")
    if (row["outcome"] == "valid") != (entry["kind"] in VALID_KINDS):
        problems.append(f"outcome {row['outcome']} for a {entry['kind']} answer")
    if row.get("message_id") and entry.get("message_id") and row["message_id"] != entry["message_id"]:
        problems.append(f"message {row['message_id']}, the fake's {entry['message_id']}")
    return "; ".join(problems)


def _window_line(entry: dict[str, Any], cost: Decimal) -> str:
    fate = "its worker was gone before the answer was written" if entry.get("client_gone") else \
        "written, never on the books"
    return (f"{entry['request_id']} ({entry['kind']}, job {_job_of(entry)[:8]}, "
            f"{datetime.fromtimestamp(entry['answered'], UTC):%H:%M:%S.%f}"[:-3] + f", ${cost}: {fate})")


def ai_spend(journal: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None,
             prices: dict[str, tuple] | None = None) -> Check:
    """The spend the fake handed out (its journal's usage x prices) equals the spend on the books to the
    cent, once the answers missing from the books are counted out; those (the window: paid at the API,
    never recorded) are listed, and there are at most WINDOW_MAX of them. Every book row agrees with
    its answer (tokens, cost, outcome)."""
    rows = book_rows() if rows is None else rows
    prices = settings.AI_MODEL_PRICES if prices is None else prices
    paid = paid_answers(journal)
    costs = {e["request_id"]: answer_cost(e, prices) for e in paid}
    handed = sum(costs.values(), Decimal(0))
    books = sum((r["cost_usd"] for r in rows), Decimal(0))
    by_id = {r["request_id"]: r for r in rows}
    window = [e for e in paid if e["request_id"] not in by_id]
    window_cost = sum((costs[e["request_id"]] for e in window), Decimal(0))
    disagree = [f"{e['request_id']}: {d}" for e in paid if e["request_id"] in by_id
                if (d := _disagreement(e, by_id[e["request_id"]], costs[e["request_id"]]))]
    gap = handed - window_cost - books
    ok = abs(gap) < CENT and len(window) <= WINDOW_MAX and not disagree
    figures = (f"the fake handed out ${handed} in {len(paid)} paid answers ({len(journal)} answers: "
               f"{dict(sorted(Counter(e['kind'] for e in journal).items()))}); the books ${books} in {len(rows)} "
               f"requests; not on the books (the window) {len(window)} of at most {WINDOW_MAX}, ${window_cost}; "
               f"handed out - window - books = ${gap}")
    if window:
        figures += "; window: " + ", ".join(_window_line(e, costs[e["request_id"]]) for e in window)
    if disagree:
        figures += f"; rows that disagree with the fake {len(disagree)}: {_few(disagree, 3)}"
    return Check("AI spend: the books equal what the fake API handed out", ok, figures)


def paid_once(journal: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None) -> Check:
    """No job paid for two valid answers outside the window: per job (its Idempotency-Key), the valid
    answers the fake handed out are at most one, the extras allowed only when they are in the window
    (the first never reached the books, so the next attempt had to ask again); and no book row names a
    request the fake never answered."""
    rows = book_rows() if rows is None else rows
    on_books = {r["request_id"] for r in rows}
    handed = {e["request_id"] for e in journal}
    valid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in paid_answers(journal):
        if entry["kind"] in VALID_KINDS:
            valid[_job_of(entry)].append(entry)
    twice = {job: entries for job, entries in valid.items()
             if sum(e["request_id"] in on_books for e in entries) > 1}
    again_in_window = {job for job, entries in valid.items() if len(entries) > 1 and job not in twice}
    unknown = [r for r in rows if r["request_id"] not in handed]
    ok = not twice and not unknown
    figures = (f"{len(valid)} jobs got a valid answer, {sum(len(v) for v in valid.values())} valid answers; "
               f"jobs paid twice outside the window {len(twice)}, asked again after an answer in the window "
               f"{len(again_in_window)}; book rows the fake never answered {len(unknown)}")
    if twice:
        figures += " (" + "; ".join(f"job {job}: {', '.join(e['request_id'] for e in entries)}"
                                    for job, entries in sorted(twice.items())[:3]) + ")"
    if unknown:
        figures += f" ({_few(r['request_id'] for r in unknown)})"
    return Check("no site paid twice outside the window, no request the fake never answered", ok, figures)


def _crossing(entries: list[dict[str, Any]], costs: list[Decimal], budget: Decimal) -> int | None:
    """Index of the entry whose cost brought the running total to the budget (None: never reached)."""
    total = Decimal(0)
    for i, cost in enumerate(costs):
        total += cost
        if total >= budget:
            return i
    return None


def _running_total(events) -> Callable[[float], Decimal]:
    """moment -> the sum of the (time, amount) events at or before it."""
    events = sorted(events)
    times, totals, total = [t for t, _ in events], [], Decimal(0)
    for _, amount in events:
        total += amount
        totals.append(total)

    def at(moment: float) -> Decimal:
        n = bisect.bisect_right(times, moment)
        return totals[n - 1] if n else Decimal(0)

    return at


def budget_reasons() -> list[str]:
    """Failed attempts and dead letters of site generation that name the budget: it must fail none."""
    failures = JobFailure.objects.filter(queue="site-generation").filter(
        Q(error__icontains="budget")).values_list("error", flat=True)
    letters = DeadLetter.objects.filter(Q(error_message__icontains="budget")).values_list("error_message", flat=True)
    return [*failures, *(m or "" for m in letters)]


def budget_held(journal: list[dict[str, Any]], *, budget: Decimal, raised_at: float, bound: int,
                paused: bool, rows: list[dict[str, Any]] | None = None, prices: dict[str, tuple] | None = None,
                failures: Callable[[], list[str]] = budget_reasons) -> Check:
    """The daily budget, reached mid-run, held until it was raised (raised_at, wall clock): the fake's
    handed-out spend went past it by at most `bound` (concurrency x pools) times the largest single
    request; the requests answered after the fake's crossing and asked before the raise are the ones in
    flight at it, at most `bound`, plus those asked while the books lagged the fake (an answer between
    its arrival and its record's commit, or one never recorded): listed, not folded into the bound. None
    asked once the books had crossed; the queue paused (`paused`: the run saw it); no attempt failed,
    nothing was dead-lettered for it."""
    rows = book_rows() if rows is None else rows
    prices = settings.AI_MODEL_PRICES if prices is None else prices
    paid = sorted(paid_answers(journal), key=lambda e: e["answered"])
    costs = [answer_cost(e, prices) for e in paid]
    at = _crossing(paid, costs, budget)
    if at is None:
        return Check("daily budget: overshoot within the in-flight bound, nothing failed for it", False,
                     f"the fake handed out ${sum(costs, Decimal(0))}, never the budget ${budget}: nothing was proven")
    crossed = paid[at]["answered"]
    books_at = _running_total((r["created_at"], r["cost_usd"]) for r in rows)
    fake_at = _running_total((e["answered"], c) for e, c in zip(paid, costs))
    on_books = {r["request_id"] for r in rows}
    never_at = _running_total((e["answered"], c) for e, c in zip(paid, costs) if e["request_id"] not in on_books)

    held = [e for e in journal if crossed < e["answered"] and e["received"] <= raised_at]
    in_flight = [e for e in held if e["received"] <= crossed]
    later = [e for e in held if e["received"] > crossed]
    lagged = [e for e in later if books_at(e["received"]) < budget]
    over = [e for e in later if books_at(e["received"] - CHECK_TO_ARRIVAL_SECONDS) >= budget]
    # Arrived just after the books crossed, so checked just before: the crossing's record was committing.
    just_before = [e for e in later if e not in lagged and e not in over]
    spent = sum((c for e, c in zip(paid, costs) if e["received"] <= raised_at), Decimal(0))
    largest = max(costs)
    overshoot = spent - budget
    allowed = bound * largest
    reasons = failures()
    ok = paused and len(in_flight) <= bound and not over and overshoot <= allowed and not reasons
    figures = (f"budget ${budget} reached at the fake at {datetime.fromtimestamp(crossed, UTC):%H:%M:%S} UTC "
               f"(answer {at + 1} of {len(paid)}); the pause {'seen' if paused else 'NOT seen'}; {len(held)} requests "
               f"answered after the crossing and asked before the raise: {len(in_flight)} in flight at the crossing "
               f"(bound {bound}), {len(lagged)} asked while the books lagged the fake, {len(just_before)} within "
               f"{CHECK_TO_ARRIVAL_SECONDS:g} s of the books' crossing, {len(over)} asked once the books had crossed; "
               f"overshoot ${overshoot} (bound ${allowed}: {bound} x the largest request ${largest}); attempts "
               f"failed or dead-lettered for the budget {len(reasons)}")
    for label, entries in (("lagged", lagged), ("just before", just_before), ("over", over)):
        if entries:
            # Why the books were short of the fake then: answers never on them (the window), or committing.
            figures += f" ({label}: " + ", ".join(
                f"{e['request_id']} (books ${books_at(e['received'])}, fake ${fake_at(e['received'])}, "
                f"${never_at(e['received'])} of it never on the books)" for e in entries[:5]) + ")"
    if reasons:
        figures += f" (e.g. {reasons[0][:120]})"
    return Check("daily budget: overshoot within the in-flight bound, nothing failed for it", ok, figures)


def every_check(*, lead_job_ids: list[str], invalid_job_ids: set[str], sink_counts: Counter,
                sink_refused: list[tuple[str, str, str]], sink_plan: SinkPlan,
                limits: dict[str, tuple[int, float] | None], journal: list[dict[str, Any]], budget: dict[str, Any],
                limiter_log: dict[str, list[float]] | None = None) -> list[Check]:
    """Every line, each on its own: one that raises is a FAIL with its error, the others still run."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("every lead final", lambda: leads_final(lead_job_ids)),
        ("no job lost or stuck", jobs_final),
        ("each qualified lead: one site, one email", lambda: sites_and_emails(sink_counts, sink_plan.no_mailbox)),
        ("dead-letter entries", lambda: dead_letters(invalid_job_ids, sink_plan.no_mailbox)),
        ("unknown mailboxes", lambda: refused_mailboxes(sink_plan.no_mailbox, sink_counts)),
        ("421/451 on first tries", lambda: temporary_refusals(sink_refused, sink_plan.temporary,
                                                               sink_plan.no_mailbox, sink_counts)),
        ("messages settled", messages_settled),
        ("rate limits", lambda: rate_limits(limits, limiter_log)),
        ("AI spend at the fake", lambda: ai_spend(journal)),
        ("paid once", lambda: paid_once(journal)),
        ("daily budget", lambda: budget_held(journal, **budget)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - a check that cannot run has not passed
            results.append(Check(name, False, f"the check raised {type(exc).__name__}: {exc}"))
    return results
