"""make chaos's daily budget: set so the fake API's answers reach it mid-run, then held, then raised.

The programs read AI_DAILY_BUDGET_USD from an ENV_FILE of the run's own (never from their environment,
which would win over the file), so raising it is what an operator does: write the file, restart the
programs that read it (the site-generation workers and the dispatchers, pool by pool), and the leading
dispatcher lifts its own pause once the spend is below the new budget.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

# Where the budget falls: this share of the run's expected paid answers, so it is reached after the
# faults (PostgreSQL is back at 180 s) and well before the end, with its pause and raise in between.
BUDGET_SHARE = 0.45
# Originals that qualify, in the runs so far (761 to 779 of 850): the expected sites.
QUALIFIED_SHARE = 0.9
RAISED_FACTOR = 100  # the raised budget: far above anything the run can spend
HOLD_SECONDS = 15.0  # paused this long before the raise: the requests in flight land, nothing new is asked
LIFT_SECONDS = 60.0  # the pause must be gone this soon after the restarts


def budget_for(originals: int, prices: tuple, mean_usage: dict[str, float], answers_per_site: float) -> Decimal:
    """A budget the run reaches after BUDGET_SHARE of its expected paid answers, rounded to the cent."""
    p_in, p_out, p_write, p_read = (Decimal(p) for p in prices)
    mean = (Decimal(str(mean_usage["input_tokens"])) * p_in + Decimal(str(mean_usage["output_tokens"])) * p_out
            + Decimal(str(mean_usage["cache_creation_input_tokens"])) * p_write
            + Decimal(str(mean_usage["cache_read_input_tokens"])) * p_read) / Decimal(1_000_000)
    answers = Decimal(str(BUDGET_SHARE * QUALIFIED_SHARE * originals * answers_per_site))
    return max(Decimal("0.01"), (answers * mean).quantize(Decimal("0.01")))


def write_budget(path: Path, budget: Decimal) -> None:
    path.write_text(f"# make chaos: what the programs read at start (ENV_FILE)\nAI_DAILY_BUDGET_USD={budget}\n")


@dataclass
class BudgetPhase:
    """What the run saw of the budget: when it paused the queue, what waited, when it was raised."""

    budget: Decimal
    env_file: Path
    log: Callable[[str], None]
    paused_at: float | None = None  # wall clock (the fake's journal's)
    raised_at: float = field(default_factory=lambda: float("inf"))  # none: every answer counts as before it
    waiting: int = 0
    dead: int = 0
    lifted_after: float | None = None
    restarts: list[float] = field(default_factory=list)

    def pause(self):
        from sites.budget import BUDGET_PAUSED_BY
        from sites.services import SITE_QUEUE
        from workers.models import QueuePause

        return QueuePause.objects.filter(queue=SITE_QUEUE, paused_by=BUDGET_PAUSED_BY).first()

    def wait_for_pause(self, db_call, deadline: float, nothing_left: Callable[[], bool]) -> bool:
        """Until the budget's pause is seen (True), the site jobs are all done without one, or the deadline."""
        last_report = time.monotonic()
        while time.monotonic() < deadline:
            if db_call(self.pause) is not None:
                self.paused_at = time.time()
                self.log(f"budget: site-generation paused by {self.pause_reason(db_call)}")
                return True
            if db_call(nothing_left, False):
                self.log("budget: every site job finished and the budget was never reached")
                return False
            if time.monotonic() - last_report > 30:
                self.log(f"budget: waiting for the ${self.budget} budget to be reached")
                last_report = time.monotonic()
            time.sleep(0.5)
        return False

    def pause_reason(self, db_call) -> str:
        pause = db_call(self.pause)
        return f"{pause.paused_by}: {pause.reason}" if pause else "(gone)"

    def hold(self, db_call) -> None:
        """Paused for HOLD_SECONDS; then what waits and what died."""
        from sites.services import SITE_QUEUE
        from workers.models import Job

        time.sleep(HOLD_SECONDS)

        def counts() -> tuple[int, int]:
            jobs = Job.objects.filter(queue=SITE_QUEUE)
            return (jobs.filter(state__in=[Job.State.PENDING, Job.State.RETRY]).count(),
                    jobs.filter(state=Job.State.DEAD).count())

        self.waiting, self.dead = db_call(counts, (0, -1))
        self.log(f"budget: paused {HOLD_SECONDS:g} s; {self.waiting} site jobs waiting, {self.dead} dead")

    def raise_budget(self, restart: Callable[[str], float], db_call, deadline: float) -> bool:
        """Write the raised budget, restart the pools one by one, wait until the pause is lifted."""
        raised = self.budget * RAISED_FACTOR
        self.raised_at = time.time()
        write_budget(self.env_file, raised)
        self.log(f"budget: raised to ${raised} in {self.env_file.name}; restarting the pools to read it")
        for pool in ("primary", "backup"):
            self.restarts.append(restart(pool))
        lift_deadline = min(deadline, time.monotonic() + LIFT_SECONDS)
        started = time.monotonic()
        while time.monotonic() < lift_deadline:
            if db_call(lambda: self.pause() is None, False):
                self.lifted_after = time.monotonic() - started
                self.log(f"budget: the pause is lifted ({self.lifted_after:.1f} s after the restarts)")
                return True
            time.sleep(0.5)
        self.log(f"budget: still paused {LIFT_SECONDS:g} s after the restarts: {self.pause_reason(db_call)}")
        return False

    def check_args(self, bound: int) -> dict:
        return {"budget": self.budget, "raised_at": self.raised_at, "bound": bound,
                "paused": self.paused_at is not None and self.waiting > 0 and self.dead == 0}
