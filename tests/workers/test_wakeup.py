"""wakeup: the dispatcher's nudge, and its wait when Redis is away."""
import threading
import time

import redis

from tests.system.processes import free_port
from workers import wakeup


def test_wait_sleeps_out_its_timeout_when_redis_is_away(monkeypatch):
    unreachable = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(wakeup, "_client", lambda: unreachable)
    started = time.monotonic()
    assert wakeup.wait(0.3) is False
    assert time.monotonic() - started >= 0.25  # not at once: the caller loops on it


def test_nudge_never_fails_the_caller_when_redis_is_away(monkeypatch):
    unreachable = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    monkeypatch.setattr(wakeup, "_client", lambda: unreachable)
    wakeup.nudge()


def test_a_nudge_during_a_round_is_kept_for_the_next_wait(redis_client):
    wakeup.nudge()
    wakeup.nudge()
    assert wakeup.wait(0.01) is True  # one pending nudge stands for both
    assert wakeup.wait(0.01) is False
    wakeup.nudge()  # a job finished while the round ran
    assert wakeup.wait(5) is True


def test_a_freed_slot_is_gathered_until_new_work_is_announced(redis_client):
    # A round woken by a job that ended waits for more to end; a job queued meanwhile ends the wait,
    # and the one round that follows serves both (nothing is left for another round).
    wakeup.nudge(freed=True)
    threading.Timer(0.2, wakeup.nudge).start()
    assert wakeup.wait(5, gather=10) is True
    assert redis_client.llen(wakeup.KEY) == 0 and redis_client.llen(wakeup.FREED_KEY) == 0
    assert wakeup.wait(0.01) is False
