"""Failure kinds a job can raise. Anything else is treated as temporary and retried."""
import math

from django.db import DataError


class PermanentError(Exception):
    """Retrying cannot help: the job goes to the dead-letter queue at once."""


class InvalidData(PermanentError):
    """The job's input is malformed or fails validation."""


def is_rejected_input(exc: BaseException) -> bool:
    """The job was turned down for its own input (InvalidData and its kinds, such as leads'
    InvalidLead): the health rules count it as rejected, not as a failure of the system."""
    return isinstance(exc, InvalidData)


class MissingResource(PermanentError):
    """A row or external resource the job needs does not exist."""


class RetryLater(Exception):
    """A temporary failure that names its own wait (an HTTP 429's retry-after): the attempt counts as
    failed like any other, and the next one starts no sooner than `seconds` from now (or the usual
    backoff, if that is longer)."""

    # A retry-after beyond a day is a server's mistake, not a plan: the job would look lost.
    MAX_SECONDS = 86_400.0

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry after {seconds}s")
        seconds = float(seconds)
        self.seconds = min(max(seconds, 0.0), self.MAX_SECONDS) if math.isfinite(seconds) else 0.0


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and the job moved on)."""


def is_permanent(exc: BaseException) -> bool:
    """Does retrying this failure make no sense? A PermanentError says so; so does a value the
    database refuses (DataError: integer out of range, text too long, invalid JSON), because the
    same data is refused the same way on every attempt."""
    return isinstance(exc, (PermanentError, DataError))



class Postpone(Exception):
    """Not a failure: the job cannot run yet for a reason outside it (a paused queue it waits on, a budget spent).
    The attempt is given back uncounted and the job waits `seconds` in the ledger (workers.ledger.defer)."""
    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(0.0, float(seconds))
        self.reason = reason
