"""Failure kinds a job can raise. Anything else is treated as temporary and retried."""


class PermanentError(Exception):
    """Retrying cannot help: the job goes to the dead-letter queue at once."""


class InvalidData(PermanentError):
    """The job's input is malformed or fails validation."""


class MissingResource(PermanentError):
    """A row or external resource the job needs does not exist."""


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and the job moved on)."""
