"""Bare Celery, for comparison: a no-op task with no ledger, counting completions in Redis."""
import redis
from django.conf import settings

from resilience.celery import app

COUNTER = "resilience:bench:bare-done"


@app.task(name="bench.bare_noop", ignore_result=True)
def bare_noop() -> None:
    redis.Redis.from_url(settings.REDIS_URL).incr(COUNTER)
