"""Delivery runs: start one per won lead, run its steps one job each, fail and resume at a step.

The run's state is written in the transactions the ledger already has for each step's job: the step
is marked running (with its attempt) before it acts, and marked done in the transaction that enqueues
the next step's job and completes its own. So a crash resumes at the step that was running, and a
step marked done is never run again (its job, delivered twice, finds it done: AlreadyDone).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from delivery import steps as step_defs
from delivery.models import DeliveryRun, DeliveryStep
from dlq.models import DeadLetter
from resilience.redaction import redact_text
from leads.models import Lead
from workers import ledger
from workers.errors import InvalidData, MissingResource, Postpone
from workers.outside import AlreadyDone, Attempt

DELIVERY_QUEUE = "delivery"
STEP_TASK = "delivery.run_step"


class LeadNotFound(Exception):
    pass


# The lead has no site and none is being made (never qualified, disqualified): its run could never
# publish one, so it is not started.
NoSiteComing = step_defs.NoSiteComing


def step_key(run_id: int, name: str) -> str:
    """The idempotency key a step sends with its effects: the same for every attempt and requeue."""
    return f"delivery-run-{run_id}-{name}"


def _enqueue_step(run: DeliveryRun, step: DeliveryStep) -> None:
    # The step's name and place ride in the payload (not business data): the dead-letter entry of
    # a failed step says which one it was even after the run is gone.
    job = ledger.enqueue(
        DELIVERY_QUEUE, STEP_TASK,
        {"run_id": run.pk, "step_id": step.pk, "step": step.name, "position": step.position},
        idempotency_key=f"delivery-step:{step.pk}",
    )
    DeliveryStep.objects.filter(pk=step.pk).update(job_id=job.id)


def start_delivery(lead_id: int, *, by: str) -> tuple[DeliveryRun, bool]:
    """Mark the lead won and start its delivery run: (run, created). A lead has one run: starting
    it again returns the existing run, whatever its state (a failed run resumes through the
    dead-letter queue, at its failed step). A lead with no run that has no site and no site-generation
    job is refused (NoSiteComing), before it is marked won."""
    with transaction.atomic():
        # The lead's row lock makes concurrent starts wait for each other; the unique index on
        # DeliveryRun.lead is what guarantees one run even without it.
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None:
            raise LeadNotFound(f"no lead {lead_id}")
        if not DeliveryRun.objects.filter(lead=lead).exists():
            step_defs.check_site_coming(lead)
        Lead.objects.filter(pk=lead.pk, won_at__isnull=True).update(won_at=Now(), updated_at=Now())
        run, created = DeliveryRun.objects.get_or_create(lead=lead, defaults={"started_by": by[:150]})
        if created:
            rows = DeliveryStep.objects.bulk_create(
                DeliveryStep(run=run, position=i, name=step.name) for i, step in enumerate(step_defs.STEPS, 1)
            )
            _enqueue_step(run, rows[0])
    return run, created


# --- one step: the work of its job ----------------------------------------------------------------

def _payload_step_id(payload: dict[str, Any]) -> int:
    step_id = payload.get("step_id")
    if not isinstance(step_id, int) or isinstance(step_id, bool):
        raise InvalidData(f"delivery step job payload has no integer step_id: {payload!r}"[:300])
    return step_id


def _locked_step(step_id: int) -> DeliveryStep:
    step = DeliveryStep.objects.select_for_update().select_related("run", "run__lead").filter(pk=step_id).first()
    if step is None:
        raise MissingResource(f"delivery step {step_id} does not exist (its run was deleted?)")
    return step


@dataclass(frozen=True)
class Waiting:
    """What prepare() hands to call() when the step must wait: call() postpones the job."""
    seconds: float
    reason: str


class StepWork:
    """workers.outside.OutsideWork for one delivery step."""

    def prepare(self, attempt: Attempt) -> step_defs.StepContext | Waiting:
        step = _locked_step(_payload_step_id(attempt.payload))
        if step.state == DeliveryStep.State.DONE:
            raise AlreadyDone(f"delivery step {step.pk} ({step.name}) is done")
        definition = step_defs.step_named(step.name)  # unknown: PermanentError before anything is marked
        if definition.needs_site:
            waiting_for = step_defs.site_wait_reason(step.run.lead)
            if waiting_for is not None:
                return _wait(step, waiting_for)
        now = timezone.now()
        step.state = DeliveryStep.State.RUNNING
        step.attempts += 1
        step.started_at = step.started_at or now
        step.job_id = attempt.job_id
        step.waiting_for = ""
        step.save(update_fields=["state", "attempts", "started_at", "job_id", "waiting_for"])
        DeliveryRun.objects.filter(pk=step.run_id).update(current_step=step.position, updated_at=now)
        run = step.run
        return step_defs.StepContext(run_id=run.pk, lead_id=run.lead_id, lead_email=run.lead.email, step_id=step.pk,
                                     position=step.position, name=step.name,
                                     idempotency_key=step_key(run.pk, step.name))

    def call(self, attempt: Attempt, ctx: step_defs.StepContext | Waiting) -> dict[str, Any]:
        if isinstance(ctx, Waiting):
            # Raised here rather than in prepare(): prepare's transaction must commit for the wait to
            # be counted, and it is the attempt's owner that counted it (the job's row was locked).
            raise Postpone(ctx.seconds, ctx.reason)
        step = step_defs.step_named(ctx.name)
        return step.call(ctx) if step.call else {}

    def record(self, attempt: Attempt, ctx: step_defs.StepContext, called: dict[str, Any]) -> None:
        step = _locked_step(ctx.step_id)
        if step.state == DeliveryStep.State.DONE:
            return  # recorded already: nothing twice
        definition = step_defs.step_named(ctx.name)
        result = definition.record(ctx, called) if definition.record else called
        _finish_step(step, result)

    def failed(self, attempt: Attempt, ctx: step_defs.StepContext | Waiting, exc: BaseException) -> None:
        if isinstance(ctx, Waiting):
            return  # not a failure: prepare() wrote why it waits
        DeliveryStep.objects.filter(pk=ctx.step_id).update(
            last_error=redact_text(f"{type(exc).__name__}: {exc}")[:2000])


def _wait(step: DeliveryStep, reason: str) -> Waiting:
    """Count the step's wait and say why it waits; the step is not started (no attempt counted)."""
    seconds = step_defs.site_wait_seconds(step.waits)
    step.waits += 1
    step.waiting_for = reason
    step.save(update_fields=["waits", "waiting_for"])
    return Waiting(seconds, f"delivery step {step.position} ({step.name}) waits {seconds:.0f} s: {reason}")


def _finish_step(step: DeliveryStep, result: dict[str, Any]) -> None:
    """Step done, next step's job enqueued (or the run delivered): one transaction, the caller's."""
    now = timezone.now()
    step.state, step.finished_at, step.result, step.last_error = DeliveryStep.State.DONE, now, result, ""
    step.save(update_fields=["state", "finished_at", "result", "last_error"])
    run = step.run
    following = run.steps.filter(position__gt=step.position).order_by("position").first()
    if following is not None:
        _enqueue_step(run, following)
        DeliveryRun.objects.filter(pk=run.pk).update(current_step=following.position, updated_at=now)
    else:
        DeliveryRun.objects.filter(pk=run.pk).update(state=DeliveryRun.State.DELIVERED, finished_at=now,
                                                    error="", updated_at=now)


# --- dead-lettered and requeued (workers.signals, see delivery.receivers) --------------------------

def fail_run_at_step(step_id: Any, entry: DeadLetter) -> None:
    """The step's job is dead: the run is failed at that step, and the entry says which step."""
    if not isinstance(step_id, int):
        return
    step = DeliveryStep.objects.select_for_update().select_related("run").filter(pk=step_id).first()
    if step is None:
        return
    run = step.run
    total = run.steps.count()
    error = f"delivery step {step.position} of {total} ({step.name}) failed: {entry.error_message or ''}"
    DeliveryStep.objects.filter(pk=step.pk).update(state=DeliveryStep.State.FAILED, waiting_for="",
                                                   last_error=entry.error_message or "")
    DeliveryRun.objects.filter(pk=run.pk).update(state=DeliveryRun.State.FAILED, current_step=step.position,
                                                error=error, updated_at=Now())
    entry.error_message = error
    entry.job_data = {**entry.job_data, "delivery": {
        "run_id": run.pk, "lead_id": run.lead_id, "step": step.name, "position": step.position, "steps": total,
    }}
    entry.save(update_fields=["error_message", "job_data"])


def resume_run_at_step(step_id: Any) -> None:
    """The step's job is back from the dead-letter queue: the run goes on from that step (the steps
    before it stay done and are not run again)."""
    if not isinstance(step_id, int):
        return
    step = DeliveryStep.objects.select_for_update().filter(pk=step_id, state=DeliveryStep.State.FAILED).first()
    if step is None:
        return
    DeliveryStep.objects.filter(pk=step.pk).update(state=DeliveryStep.State.PENDING, finished_at=None)
    DeliveryRun.objects.filter(pk=step.run_id, state=DeliveryRun.State.FAILED).update(
        state=DeliveryRun.State.RUNNING, current_step=step.position, error="", updated_at=Now())


def cancel_steps(job_ids: list[str]) -> int:
    """Their step jobs were cancelled before an attempt claimed them (workers.registry.on_cancel): the
    step will not run, so it fails with the reason and its run fails at it, as a dead step's would
    (the steps before it stay done). Returns how many steps were marked."""
    steps = list(DeliveryStep.objects.select_for_update().filter(
        job_id__in=job_ids, state__in=[DeliveryStep.State.PENDING, DeliveryStep.State.RUNNING]))
    for step in steps:
        total = DeliveryStep.objects.filter(run_id=step.run_id).count()
        reason = "its job was cancelled in the ledger before it ran"
        DeliveryStep.objects.filter(pk=step.pk).update(state=DeliveryStep.State.FAILED, waiting_for="",
                                                       last_error=reason, finished_at=timezone.now())
        DeliveryRun.objects.filter(pk=step.run_id, state=DeliveryRun.State.RUNNING).update(
            state=DeliveryRun.State.FAILED, current_step=step.position, updated_at=Now(),
            error=f"delivery step {step.position} of {total} ({step.name}) cancelled: {reason}")
    return len(steps)


# --- reading ---------------------------------------------------------------------------------------

def runs_in_progress(limit: int) -> tuple[list[DeliveryRun], int]:
    """The newest running runs (their lead and steps fetched) and how many run in all."""
    running = DeliveryRun.objects.filter(state=DeliveryRun.State.RUNNING)
    newest = list(running.select_related("lead").prefetch_related("steps").order_by("-created_at")[:limit])
    return newest, running.count()
