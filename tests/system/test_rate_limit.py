"""The global rate limit with real workers of two pools, then with one pool killed.

Start times are read from the limiter's own log in Redis (polled faster than its window), so the
check is of what the limiter allowed, whichever pool started the job.
"""
import os
import signal

import pytest
import redis
from django.conf import settings

from tests.system.processes import ProcessGroup, wait_for
from workers import ratelimit
from workers.models import Job
from workers.probe import enqueue_probe

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
LIMIT, PERIOD = 5, 1.0




def test_starts_stay_within_the_global_limit_across_pools_and_after_one_dies(tmp_path, redis_client):
    group = ProcessGroup(tmp_path, DELIVERY_RATE=f"{LIMIT}/s")
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for pool in ("primary", "backup"):
            group.worker("delivery", pool, 3)
            group.dispatcher(pool)
        for pool in ("primary", "backup"):
            group.wait_ready(f"delivery@{pool}")
        jobs = [enqueue_probe("delivery", sleep=0.05) for _ in range(30)]

        seen: dict[bytes, float] = {}
        killed = False

        def poll() -> bool:
            nonlocal killed
            # Up to "(+inf": the log's trust marker, scored +inf, is not a start.
            log = client.zrangebyscore(ratelimit.KEY_PREFIX + "delivery", "-inf", "(+inf", withscores=True)
            for member, score in log:
                seen[member] = score / 1000
            done = Job.objects.filter(state="succeeded").count()
            if done >= 10 and not killed:  # halfway through the first pool dies
                os.killpg(group.procs["delivery@primary"].pid, signal.SIGKILL)
                killed = True
            return done == len(jobs)

        assert wait_for(poll, 60, interval=0.1), group.logs()
        poll()
    finally:
        group.stop_all()
        client.close()

    assert killed
    assert len(seen) >= len(jobs)  # a start slot for every job that ran (a killed attempt may add one)
    assert ratelimit.max_starts_in_any_window(list(seen.values()), PERIOD) <= LIMIT
    # After the kill the backup pool alone ran the rest.
    late = Job.objects.filter(state="succeeded").order_by("-finished_at")[:10]
    assert all("@backup." in job.worker for job in late)
    assert set(Job.objects.values_list("state", flat=True)) == {"succeeded"}

