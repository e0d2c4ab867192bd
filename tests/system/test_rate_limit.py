"""The global rate limit with real workers of two pools: with one pool killed, and across a Redis
restart.

With one pool killed, start times are read from the limiter's own log in Redis (polled faster than
its window), so the check is of what the limiter allowed, whichever pool started the job. Across a
Redis restart that log is lost, so starts are counted from the ledger: each job here succeeds at its
first attempt, so its started_at is the time of its one start.
"""
import os
import signal

import pytest
import redis
from django.conf import settings

from tests.system.checks import wait_succeeded
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


def test_a_redis_restart_mid_window_frees_no_slot_that_a_start_took(private_redis, processes):
    """Given a limit of 6 starts per 15 s, two pools of 3 on a private Redis, and 12 short jobs;
    when Redis restarts (losing the limiter's log with everything else) after the first 6 ran;
    then counted from the ledger no 15 s window holds more than 6 starts (before the fix, the
    restarted Redis showed every slot free and the next 6 started at once), and every job ran once.

    Redis restarts while no job runs: a worker that loses Redis while holding unacknowledged
    messages can exit ("Unrecoverable error" in kombu's restore), which supervisord would restart
    but this test does not."""
    limit, period = 6, 15.0
    processes.configure(TEST_REDIS_URL=private_redis.url, DELIVERY_RATE=f"{limit}/{period:g}s", LOG_LEVEL="INFO")
    for pool in ("primary", "backup"):
        processes.worker("delivery", pool, 3)
    processes.dispatcher("primary")
    for pool in ("primary", "backup"):
        processes.wait_ready(f"delivery@{pool}")
    jobs = [enqueue_probe("delivery", sleep=0.2) for _ in range(2 * limit)]
    assert wait_for(lambda: Job.objects.filter(state="succeeded").count() >= limit, 30), processes.logs()

    private_redis.stop()
    private_redis.start()
    wait_succeeded(jobs, 90, processes)

    done = list(Job.objects.filter(id__in=[j.id for j in jobs]))
    assert all(job.attempts == 1 for job in done), [(job.id, job.attempts, job.last_error) for job in done]
    starts = sorted(job.started_at.timestamp() for job in done)
    print(f"\nMEASURED rate limit across a Redis restart: most starts in any {period:g}s window "
          f"{ratelimit.max_starts_in_any_window(starts, period)} (limit {limit}); start {limit + 1} came "
          f"{starts[limit] - starts[0]:.1f}s after the first")
    assert ratelimit.max_starts_in_any_window(starts, period) <= limit
    assert "rebuilt from the ledger with" in processes.log_text("delivery@primary") + processes.log_text(
        "delivery@backup") + processes.log_text("dispatcher-primary")
