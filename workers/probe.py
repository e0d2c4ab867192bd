"""Probe jobs: diagnostic work with a known duration, used by failure tests, `make bench` and
operators checking a queue end to end (`manage.py enqueue_probes`).

Each start is counted in Redis (outside the job's transaction, so a rolled-back or killed attempt
still counts): a finished probe that shows more starts than attempts ran twice.
"""
from __future__ import annotations

import time

from workers import ledger
from workers.errors import InvalidData, PermanentError
from workers.models import Job
from workers.redis_client import shared_client

PROBE_TASK = "workers.probe"
PROBE_FAILURES = ("", "transient", "permanent", "invalid")


def starts_key(job_id: str) -> str:
    return f"resilience:probe:starts:{job_id}"


def probe_starts(job_id: str) -> int:
    return int(shared_client().get(starts_key(job_id)) or 0)


def enqueue_probe(queue: str, *, sleep: float = 0.0, fail: str = "") -> Job:
    """fail: '' (succeed), 'transient' (every attempt raises, so it retries then dead-letters), 'permanent',
    'invalid' (dead-lettered at once as rejected input, like an invalid lead)."""
    if fail not in PROBE_FAILURES:
        raise ValueError(f"fail must be one of {', '.join(map(repr, PROBE_FAILURES))}, not {fail!r}")
    return ledger.enqueue(queue, PROBE_TASK, {"sleep": sleep, "fail": fail})


def run_probe(job: Job) -> None:
    shared_client().incr(starts_key(str(job.id)))
    shared_client().expire(starts_key(str(job.id)), 86_400)
    time.sleep(float(job.payload.get("sleep", 0)))
    fail = job.payload.get("fail", "")
    if fail == "permanent":
        raise PermanentError("probe asked to fail permanently")
    if fail == "invalid":
        raise InvalidData("probe asked to be rejected for its input")
    if fail == "transient":
        raise ConnectionError("probe asked to fail transiently")
