"""Plain Celery, for comparison: its own app with Celery's defaults and acks_late, nothing of this
project loaded (no ledger, no results, no events, no Django), and a task that does one INCR on a
Redis connection it keeps. `python -m celery -A bench.bare worker` runs it.

The task's optional argument is when apply_async was called (time.time()): the task then also
records how long it waited to start, in the same round trip as its INCR.
"""
from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")  # bench/run.py sets it to the bench db
QUEUE = "bare"
COUNTER = "resilience:bench:bare-done"
WAITS = "resilience:bench:bare-waits"

app = Celery("bare", broker=BROKER)
app.conf.task_acks_late = True
app.conf.task_default_queue = QUEUE
app.conf.broker_connection_retry_on_startup = True

# One client per process, made at first use: each pool child gets its own connection and keeps it.
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER)
    return _client


@app.task(name="bench.bare_noop", ignore_result=True)
def bare_noop(sent_at: float | None = None) -> None:
    if sent_at is None:
        client().incr(COUNTER)
        return
    waited = time.time() - sent_at
    pipe = client().pipeline(transaction=False)
    pipe.incr(COUNTER)
    pipe.rpush(WAITS, waited)
    pipe.execute()
