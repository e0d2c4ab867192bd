"""make chaos's checks (chaos/checks.py) against the test database, fed what a broken system would
leave: each must FAIL on its violation and PASS on the same data without it. No soak here."""
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage

import pytest
from django.utils import timezone

from chaos import checks, mail
from dlq.models import DeadLetter
from emails.models import BreakerTrip, Message, Suppression
from emails.suppression import suppress
from leads.models import Lead, LeadSubmission
from sites.models import Site
from workers import ledger
from workers.models import Job, JobFailure

pytestmark = pytest.mark.django_db
T0 = timezone.now() - timedelta(hours=1)


def job(queue="lead-processing", state=Job.State.SUCCEEDED, started=None, **payload) -> Job:
    made = ledger.enqueue(queue, "t", payload or {"n": str(uuid.uuid4())})
    Job.objects.filter(pk=made.pk).update(state=state, started_at=started, slot_at=started or T0)
    made.refresh_from_db()
    return made


def lead(email: str, qualified: bool = True) -> Lead:
    return Lead.objects.create(email=email, status=Lead.Status.QUALIFIED if qualified else Lead.Status.DISQUALIFIED)


def site(for_lead: Lead, tokens: int = 2500, cost: str = "0.001125") -> Site:
    return Site.objects.create(lead=for_lead, job_id=uuid.uuid4(), design="bold", content={}, html="", model="m",
                               input_tokens=tokens, cost_usd=Decimal(cost))


def test_rate_limits_count_every_start_of_the_ledger_failed_attempts_included():
    for second in (0, 1, 2):
        job(started=T0 + timedelta(seconds=second))
    retried = job(started=T0 + timedelta(seconds=30))  # its last attempt; the first one failed at 3 s
    JobFailure.objects.create(job=retried, queue="lead-processing", attempt=1, error="WorkerLost",
                              slot_at=T0 + timedelta(seconds=3))
    # Killed between its claim and its slot: no start, whenever it was claimed.
    JobFailure.objects.create(job=retried, queue="lead-processing", attempt=2, error="WorkerLost",
                              started_at=T0 + timedelta(seconds=4))
    job(queue="email-sending", started=T0)

    failing = checks.rate_limits({"lead-processing": (3, 10.0), "email-sending": (1, 10.0), "delivery": None})
    assert not failing.ok and "lead-processing 3/10s: most 4 in 5 starts" in failing.figures
    assert checks.rate_limits({"lead-processing": (4, 10.0), "email-sending": (1, 10.0)}).ok
    assert checks.rate_limits({"lead-processing": (3, 3.0)}).ok  # 0-2 s, then 3 s: never 4 within 3 s
    Job.objects.filter(pk=retried.pk).update(slot_at=None)  # its work done without a slot
    unslotted = checks.rate_limits({"lead-processing": (4, 10.0)})
    assert not unslotted.ok and "1 succeeded without a slot" in unslotted.figures


def test_sites_and_emails_count_the_sink_not_the_database():
    a, b = lead("a@acme.io"), lead("b@acme.io")
    lead("nobody@acme.io", qualified=False)
    site(a), site(b)
    assert checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1})).ok
    twice = checks.sites_and_emails(Counter({"a@acme.io": 2, "b@acme.io": 1}))
    assert not twice.ok and "without exactly one email 1" in twice.figures
    assert not checks.sites_and_emails(Counter({"a@acme.io": 1})).ok  # b's email never arrived
    stray = checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1, "nobody@acme.io": 1}))
    assert not stray.ok and "emails to other addresses 1" in stray.figures
    Site.objects.filter(lead=b).delete()
    no_site = checks.sites_and_emails(Counter({"a@acme.io": 1, "b@acme.io": 1}))
    assert not no_site.ok and "without exactly one site 1" in no_site.figures


def test_recipients_reads_the_to_headers_of_what_the_sink_kept():
    message = EmailMessage()
    message["To"] = "Jane Doe <Jane@Acme.io>"
    assert checks.recipients([message, message]) == Counter({"jane@acme.io": 2})


def test_dead_letters_only_for_the_leads_made_invalid():
    invalid, killed = job(state=Job.State.DEAD), job(queue="site-generation", state=Job.State.DEAD)
    DeadLetter.objects.create(queue_name="lead-processing", job_id=str(invalid.id), job_data={})
    assert checks.dead_letters({str(invalid.id)}).ok
    DeadLetter.objects.create(queue_name="site-generation", job_id=str(killed.id), job_data={},
                              error_message="WorkerLost: lease expired")
    unexpected = checks.dead_letters({str(invalid.id)})
    assert not unexpected.ok and "unexpected 1" in unexpected.figures and "WorkerLost" in unexpected.figures
    missing = checks.dead_letters({str(invalid.id), str(killed.id), str(uuid.uuid4())})
    assert not missing.ok and "missing 1" in missing.figures


def test_jobs_final_finds_stuck_jobs_and_qualified_leads_without_work():
    a = lead("a@acme.io")
    job(queue="site-generation", lead_id=a.id)
    assert checks.jobs_final().ok
    stuck = job(state=Job.State.DISPATCHED)
    result = checks.jobs_final()
    assert not result.ok and "unfinished 1" in result.figures
    Job.objects.filter(pk=stuck.pk).update(state=Job.State.SUCCEEDED)
    lead("b@acme.io")  # qualified, but no site-generation job was ever made for it
    result = checks.jobs_final()
    assert not result.ok and "qualified leads without a site job 1" in result.figures


def test_leads_final_needs_every_posted_leads_job_and_a_final_submission():
    done = job()
    LeadSubmission.objects.create(payload={}, status=LeadSubmission.Status.QUALIFIED, job_id=done.id)
    assert checks.leads_final([str(done.id)]).ok
    assert not checks.leads_final([str(done.id), str(uuid.uuid4())]).ok  # a lead the ledger lost
    waiting = job(state=Job.State.RETRY)
    LeadSubmission.objects.create(payload={}, status=LeadSubmission.Status.RECEIVED, job_id=waiting.id)
    result = checks.leads_final([str(done.id), str(waiting.id)])
    assert not result.ok and "1 unfinished" in result.figures


# --- the AI checks, counted at the fake's journal -----------------------------------------------------
# A journal as fakes/anthropic.py's Journal writes it, and the books as book_rows() reads
# them; prices as the settings give them (USD per million: input, output, cache write, cache read).
PRICES = {"m": ("1", "10", "2", "0.5")}
USAGE = {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 500, "cache_read_input_tokens": 2000}
COST = Decimal("0.004")  # 1000 x 1 + 100 x 10 + 500 x 2 + 2000 x 0.5 = 4000 per million


def answer(n: int, job_id: str, *, kind: str = "valid", at: float = 1000.0, took: float = 0.1, again: bool = False,
           gone: bool = False) -> dict:
    paid = kind not in ("overloaded", "rate_limited")
    return {"n": n, "received": at, "answered": at + took, "kind": kind, "status": 200 if paid else 529,
            "request_id": f"req_{n}", "message_id": f"msg_{n}" if paid else None,
            "idempotency_key": f"job-{job_id}" + (":again" if again else ""), "model": "m",
            "usage": dict(USAGE) if paid else None, "client_gone": gone}


def row(entry: dict, *, at: float | None = None, **changes) -> dict:
    usage = entry["usage"]
    return {"request_id": entry["request_id"], "message_id": entry["message_id"],
            "job_id": entry["idempotency_key"].removesuffix(":again").removeprefix("job-"),
            "outcome": "valid" if entry["kind"] in ("valid", "slow") else "malformed", "model": "m",
            "input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"],
            "cache_write_tokens": usage["cache_creation_input_tokens"],
            "cache_read_tokens": usage["cache_read_input_tokens"], "cost_usd": COST,
            "created_at": entry["answered"] + 0.01 if at is None else at, **changes}


def jobs(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_ai_spend_passes_when_the_books_hold_every_paid_answer_and_lists_the_window():
    a, b, c = jobs(3)
    journal = [answer(1, a, kind="malformed_input"), answer(2, a, again=True), answer(3, b, kind="overloaded"),
               answer(4, b, kind="slow"), answer(5, c, gone=True)]
    rows = [row(e) for e in journal[:2]] + [row(journal[3])]
    result = checks.ai_spend(journal, rows, PRICES)
    assert result.ok, result.figures
    assert "handed out $0.016 in 4 paid answers" in result.figures and "the books $0.012 in 3" in result.figures
    assert "(the window) 1 of at most" in result.figures and "req_5" in result.figures
    assert "its worker was gone" in result.figures  # the window says what the fake saw of it


def test_ai_spend_fails_on_a_paid_answer_the_books_do_not_hold_beyond_the_window():
    journal = [answer(n, job) for n, job in enumerate(jobs(checks.WINDOW_MAX + 2), 1)]
    rows = [row(journal[0])]  # the rest were paid at the API and never recorded
    result = checks.ai_spend(journal, rows, PRICES)
    assert not result.ok and f"(the window) {checks.WINDOW_MAX + 1} of at most {checks.WINDOW_MAX}" in result.figures


def test_ai_spend_fails_when_the_books_disagree_with_the_fake_or_hold_an_extra_request():
    journal = [answer(1, jobs(1)[0])]
    wrong_tokens = checks.ai_spend(journal, [row(journal[0], output_tokens=99)], PRICES)
    assert not wrong_tokens.ok and "tokens (1000, 99, 500, 2000) at the books" in wrong_tokens.figures
    extra = {**row(journal[0]), "request_id": "req_never", "cost_usd": Decimal("0.02")}
    more = checks.ai_spend(journal, [row(journal[0]), extra], PRICES)  # the books hold a request never paid
    assert not more.ok and "handed out - window - books = $-0.02" in more.figures


def test_ai_spend_fails_on_a_journal_with_an_extra_paid_request_beyond_the_cent():
    expensive = {"m": ("1000", "10", "2", "0.5")}  # $1.003 each: one missing answer is a dollar, not a cent
    journal = [answer(1, jobs(1)[0]), answer(2, jobs(1)[0])]
    rows = [row(journal[0], cost_usd=Decimal("1.003"))]
    result = checks.ai_spend(journal, rows, expensive)
    assert result.ok  # the second is listed as the window: handed out - window = the books
    rows[0]["cost_usd"] = Decimal("0.004")
    assert not checks.ai_spend(journal, rows, expensive).ok


def test_paid_once_fails_on_a_site_paid_twice_outside_the_window():
    a, b = jobs(2)
    journal = [answer(1, a), answer(2, a, at=1010.0), answer(3, b)]
    assert not (twice := checks.paid_once(journal, [row(e) for e in journal])).ok
    assert "jobs paid twice outside the window 1" in twice.figures and "req_1, req_2" in twice.figures
    # The first answer never reached the books (the window): asking again was the only way to a site.
    fine = checks.paid_once(journal, [row(journal[1]), row(journal[2])])
    assert fine.ok and "asked again after an answer in the window 1" in fine.figures
    # A malformed answer and its second ask are one site, paid twice by design, not twice for a site.
    assert checks.paid_once([answer(4, b, kind="no_tool"), answer(5, b, again=True)],
                            [row(answer(4, b, kind="no_tool")), row(answer(5, b, again=True))]).ok


def test_paid_once_fails_on_a_book_row_the_fake_never_answered():
    journal = [answer(1, jobs(1)[0])]
    result = checks.paid_once(journal, [row(journal[0]), {**row(journal[0]), "request_id": "req_made_up"}])
    assert not result.ok and "book rows the fake never answered 1 (req_made_up)" in result.figures


def budget_run(journal: list[dict], rows: list[dict], *, budget: str = "0.02", raised_at: float = 2000.0,
               bound: int = 2, reasons: tuple = (), paused: bool = True) -> checks.Check:
    return checks.budget_held(journal, budget=Decimal(budget), raised_at=raised_at, bound=bound, paused=paused,
                              rows=rows, prices=PRICES, failures=lambda: list(reasons))


def crossing_journal() -> list[dict]:
    """Five answers reach $0.02 at 1005.1; two more were in flight then (asked at 1004.5 and 1005.0)."""
    journal = [answer(n, job, at=1000.0 + n) for n, job in enumerate(jobs(5), 1)]
    return journal + [answer(6, jobs(1)[0], at=1004.5, took=1.0), answer(7, jobs(1)[0], at=1005.0, took=0.5)]


def test_budget_held_passes_with_the_requests_in_flight_at_the_crossing():
    journal = crossing_journal()
    result = budget_run(journal, [row(e) for e in journal])
    assert result.ok, result.figures
    assert "answer 5 of 7" in result.figures and "2 in flight at the crossing (bound 2)" in result.figures
    assert "overshoot $0.008 (bound $0.008: 2 x the largest request $0.004)" in result.figures


def test_budget_held_fails_on_an_overshoot_past_the_in_flight_bound():
    journal = crossing_journal() + [answer(8, jobs(1)[0], at=1004.9, took=0.5)]  # a third in flight
    result = budget_run(journal, [row(e) for e in journal])
    assert not result.ok and "3 in flight at the crossing (bound 2)" in result.figures
    assert "overshoot $0.012 (bound $0.008" in result.figures
    # Asked 3 s after the books crossed: the check before it should have stopped it.
    late = crossing_journal() + [answer(8, jobs(1)[0], at=1008.0)]
    result = budget_run(late, [row(e) for e in late])
    assert not result.ok and "1 asked once the books had crossed" in result.figures


def test_budget_held_lists_a_request_asked_while_the_books_lagged_the_fake():
    journal = crossing_journal()[:5] + [answer(8, jobs(1)[0], at=1008.0)]
    # The fifth answer's record committed late (its worker was between the answer and the commit): the
    # books were below the budget when the eighth was asked. Listed, and allowed one request more.
    rows = [row(e) for e in journal[:4]] + [row(journal[4], at=1009.0), row(journal[5])]
    result = budget_run(journal, rows)
    assert result.ok, result.figures
    assert "1 asked while the books lagged the fake" in result.figures and "lagged: req_8" in result.figures


def test_budget_held_fails_when_never_reached_paused_or_a_job_failed_for_it():
    journal = crossing_journal()
    rows = [row(e) for e in journal]
    never = budget_run(journal, rows, budget="5")
    assert not never.ok and "never the budget $5" in never.figures
    assert not budget_run(journal, rows, paused=False).ok
    failed = budget_run(journal, rows, reasons=("ClaudeUnavailable: over the daily budget",))
    assert not failed.ok and "for the budget 1" in failed.figures
    # What the raise allowed afterwards is not past the budget.
    after = journal + [answer(9, jobs(1)[0], at=2001.0)]
    assert budget_run(after, rows + [row(after[-1])]).ok


def test_book_rows_read_every_paid_request_but_the_mock_ones():
    from sites.models import AiRequest

    job_id = uuid.uuid4()
    paid = AiRequest.objects.create(job_id=job_id, model="m", request_id="req_1", message_id="msg_1",
                                    outcome="valid", input_tokens=1000, output_tokens=100, cache_write_tokens=500,
                                    cache_read_tokens=2000, cost_usd=COST)
    AiRequest.objects.create(job_id=job_id, model="m", mock=True, outcome="valid", input_tokens=2000, cost_usd=COST)
    [read] = checks.book_rows()
    assert read["request_id"] == "req_1" and read["job_id"] == str(job_id) and read["cost_usd"] == COST
    assert read["created_at"] == paid.__class__.objects.get(pk=paid.pk).created_at.timestamp()
    journal = [answer(1, str(job_id))]
    assert checks.ai_spend(journal, prices=PRICES).ok and checks.paid_once(journal).ok


def test_budget_reasons_reads_failed_attempts_and_dead_letters_that_name_the_budget():
    # The daily budget line's default reader (the merge of wp-chaos lost its JobFailure import).
    failed = job(queue="site-generation", state=Job.State.SUCCEEDED)
    JobFailure.objects.create(job=failed, queue="site-generation", attempt=1, error="ClaudeUnavailable: over the daily budget")
    JobFailure.objects.create(job=failed, queue="site-generation", attempt=2, error="WorkerLost")
    DeadLetter.objects.create(queue_name="site-generation", job_id=str(failed.id), job_data={},
                              error_message="paused: daily budget reached")
    assert sorted(checks.budget_reasons()) == ["ClaudeUnavailable: over the daily budget", "paused: daily budget reached"]


# --- what the SMTP sink refused -----------------------------------------------------------------

GONE = frozenset({"gone@acme.io"})
BOUNCE_WORDS = "Bounced: the mailbox was refused at RCPT: 550 5.1.1 Recipient address rejected: User unknown"


def outreach(to: Lead, status: str = "sent") -> tuple[Message, Job]:
    message = Message.objects.create(key=f"outreach-{to.id}", kind="outreach", lead=to, to_email=to.email,
                                     subject="s", text_body="t", status=status)
    return message, job(queue="email-sending", message_id=str(message.id))


def bounced(to: Lead) -> Message:
    """What a 550 5.1.1 at RCPT leaves: the message failed, its job dead-lettered, the address suppressed."""
    message, send = outreach(to, status="failed")
    Job.objects.filter(pk=send.pk).update(state=Job.State.DEAD)
    DeadLetter.objects.create(queue_name="email-sending", job_id=str(send.id), job_data={}, error_message=BOUNCE_WORDS)
    suppress(to.email, "bounce", message_id=message.id, detail=BOUNCE_WORDS, by="smtp")
    return message


def test_sites_and_emails_expect_no_email_to_a_refused_mailbox():
    a, gone = lead("a@acme.io"), lead("gone@acme.io")
    site(a), site(gone)
    assert checks.sites_and_emails(Counter({"a@acme.io": 1}), GONE).ok
    result = checks.sites_and_emails(Counter({"a@acme.io": 1}))  # not excluded: it misses its email
    assert not result.ok and "not exactly one: gone@acme.io=0" in result.figures
    received = checks.sites_and_emails(Counter({"a@acme.io": 1, "gone@acme.io": 1}), GONE)
    assert not received.ok and "with an email 1" in received.figures and "gone@acme.io=1" in received.figures
    assert not checks.sites_and_emails(Counter({"gone@acme.io": 0}), GONE).ok  # a's email never arrived
    Site.objects.filter(lead=gone).delete()
    assert not checks.sites_and_emails(Counter({"a@acme.io": 1}), GONE).ok  # a refused mailbox still has its site


def test_dead_letters_expect_one_send_job_per_refused_mailbox():
    invalid = job(state=Job.State.DEAD)
    DeadLetter.objects.create(queue_name="lead-processing", job_id=str(invalid.id), job_data={})
    gone, a = lead("gone@acme.io"), lead("a@acme.io")
    missing = checks.dead_letters({str(invalid.id)}, GONE)  # its outreach never dead-lettered
    assert not missing.ok and "refused mailboxes without exactly one 1" in missing.figures
    bounced(gone)
    result = checks.dead_letters({str(invalid.id)}, GONE)
    assert result.ok, result.figures
    assert "expected 1 leads invalid on purpose + 1 outreach messages" in result.figures
    assert not checks.dead_letters({str(invalid.id)}).ok  # without the plan, the bounce is unexpected
    _, other = outreach(a, status="failed")  # a 421 retried until its attempts ran out
    DeadLetter.objects.create(queue_name="email-sending", job_id=str(other.id), job_data={}, error_message="421")
    unexpected = checks.dead_letters({str(invalid.id)}, GONE)
    assert not unexpected.ok and "unexpected 1" in unexpected.figures


def test_refused_mailboxes_received_nothing_and_are_the_only_suppressions():
    gone = lead("gone@acme.io")
    assert not checks.refused_mailboxes(GONE, Counter()).ok  # not suppressed
    message = bounced(gone)
    result = checks.refused_mailboxes(GONE, Counter({"a@acme.io": 1}))
    assert result.ok, result.figures
    received = checks.refused_mailboxes(GONE, Counter({"gone@acme.io": 1}))
    assert not received.ok and "received 1" in received.figures
    assert not checks.refused_mailboxes(frozenset({"gone@acme.io", "ghost@acme.io"}), Counter()).ok  # no lead
    assert not checks.refused_mailboxes(frozenset(), Counter()).ok  # nothing refused: nothing proven
    suppress("a@acme.io", "bounce", detail="550 5.7.1 relay denied", by="smtp")
    other = checks.refused_mailboxes(GONE, Counter())
    assert not other.ok and "other suppressions 1" in other.figures
    Suppression.objects.filter(email="a@acme.io").delete()
    Suppression.objects.filter(email="gone@acme.io").update(message_id=uuid.uuid4())  # not from its message
    assert not checks.refused_mailboxes(GONE, Counter()).ok
    Suppression.objects.filter(email="gone@acme.io").update(message_id=message.id, reason="manual")
    assert not checks.refused_mailboxes(GONE, Counter()).ok
    Suppression.objects.filter(email="gone@acme.io").update(reason="bounce")
    assert checks.refused_mailboxes(GONE, Counter()).ok
    BreakerTrip.objects.create(cause="refused", reason="breaker: ...")
    tripped = checks.refused_mailboxes(GONE, Counter())
    assert not tripped.ok and "breaker trips 1" in tripped.figures


def test_temporary_refusals_need_each_planned_first_try_refused_then_one_message():
    lead("gone@acme.io"), lead("a@acme.io"), lead("b@acme.io"), lead("c@acme.io")
    planned = frozenset({"a@acme.io", "b@acme.io"})
    refused = [("rcpt", "gone@acme.io", "550 5.1.1 no such user"), ("rcpt", "a@acme.io", "421 4.7.0 busy"),
               ("data", "b@acme.io", "451 4.7.1 Greylisted")]
    delivered = Counter({"a@acme.io": 1, "b@acme.io": 1, "c@acme.io": 1})
    result = checks.temporary_refusals(refused, planned, GONE, delivered)
    assert result.ok, result.figures
    assert "2 refused for now ({'421 at RCPT': 1, '451 after DATA': 1}) to 2 addresses" in result.figures
    never = checks.temporary_refusals(refused[:2], planned, GONE, delivered)  # b's first try was not refused
    assert not never.ok and "planned never refused 1" in never.figures
    twice = checks.temporary_refusals(refused, planned, GONE, delivered + Counter({"b@acme.io": 1}))
    assert not twice.ok and "not then received exactly once 1" in twice.figures
    lost = checks.temporary_refusals(refused, planned, GONE, Counter({"a@acme.io": 1}))
    assert not lost.ok and "b@acme.io=0" in lost.figures
    relay = checks.temporary_refusals(refused + [("rcpt", "c@acme.io", "554 5.7.1 Relay access denied")],
                                      planned, GONE, delivered)
    assert not relay.ok and "other refusals 1" in relay.figures
    assert not checks.temporary_refusals(refused, planned, frozenset(), delivered).ok  # a 5.1.1 not planned
    assert not checks.temporary_refusals([], frozenset(), GONE, delivered).ok  # nothing planned: nothing proven


def test_messages_settled_fails_on_a_message_left_pending_sending_or_unknown():
    a = lead("a@acme.io")
    message, _ = outreach(a, status="failed")
    assert checks.messages_settled().ok
    for status in ("pending", "sending", "unknown"):
        Message.objects.filter(pk=message.pk).update(status=status)
        result = checks.messages_settled()
        assert not result.ok and f"'{status}': 1" in result.figures


def test_the_sink_plan_refuses_qualifying_leads_and_a_share_of_first_tries():
    import random

    from fakes.smtp import SmtpSink
    from leads.fake import make_fake_leads_with_kinds

    planned = make_fake_leads_with_kinds(400, rng=random.Random(3))
    plan = mail.plan_refusals(planned, random.Random(5))
    assert plan == mail.plan_refusals(planned, random.Random(5))  # seeded
    qualified = set(mail.predicted_qualified(planned))
    assert len(plan.no_mailbox) == 10 and plan.no_mailbox <= qualified
    assert plan.at_rcpt_421 and plan.after_data_451 and plan.temporary <= qualified - plan.no_mailbox
    assert not plan.at_rcpt_421 & plan.after_data_451
    sink = SmtpSink(port=1)  # never started: its answers are asked directly
    mail.apply(sink, plan)
    gone, busy, grey = sorted(plan.no_mailbox)[0], sorted(plan.at_rcpt_421)[0], sorted(plan.after_data_451)[0]
    assert [sink._reply_for("rcpt", gone.upper())[:9] for _ in range(2)] == ["550 5.1.1"] * 2
    assert sink._reply_for("rcpt", busy)[:3] == "421" and sink._reply_for("rcpt", busy) is None
    assert sink._reply_for("rcpt", grey) is None and sink._reply_for("data", grey)[:3] == "451"
    assert sink._reply_for("data", grey) is None
    assert sink._reply_for("rcpt", "x" + gone) is None  # exactly those addresses


def test_predicted_qualification_is_what_processing_decides():
    import random

    from leads.fake import make_fake_leads_with_kinds
    from leads.models import LeadSubmission as Submission
    from leads.services import InvalidLead, accept_leads, process_submission

    planned = make_fake_leads_with_kinds(60, rng=random.Random(11))
    predicted = set(mail.predicted_qualified(planned))
    for submission in accept_leads([row for _, row in planned], source="test"):
        try:
            process_submission(submission.pk)
        except InvalidLead:  # the ones generated invalid: the worker dead-letters them
            pass
    qualified = set(Lead.objects.filter(status=Lead.Status.QUALIFIED).values_list("email", flat=True))
    assert predicted and predicted <= qualified
    assert Submission.objects.exists()
