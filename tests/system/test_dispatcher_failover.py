"""Dispatcher failover with real processes.

Given: two dispatcher candidates (one leads by holding a PostgreSQL advisory lock) and a worker.
When: the leader is killed with SIGKILL.
Then: PostgreSQL ends the dead leader's session and with it the lock; the other candidate takes it
on its next try, and a job enqueued after the kill is dispatched and finishes within seconds.
"""
import signal
import time

import pytest

from tests.system.checks import QUEUE, assert_ran_exactly_once, wait_succeeded
from tests.system.processes import wait_for
from workers.probe import enqueue_probe

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
CANDIDATES = ["dispatcher-primary", "dispatcher-backup"]


def test_a_killed_dispatcher_leader_is_replaced_by_the_other_candidate(processes):
    processes.configure(LOG_LEVEL="INFO")  # the leader says so in its log
    processes.worker(QUEUE, "primary", 2)
    processes.dispatcher("primary")
    processes.dispatcher("backup")
    processes.wait_ready(f"{QUEUE}@primary")
    assert wait_for(lambda: processes.leader(CANDIDATES) is not None, 20), processes.logs()
    leader = processes.leader(CANDIDATES)
    standby = next(name for name in CANDIDATES if name != leader)
    before = enqueue_probe(QUEUE)
    wait_succeeded([before], 15, processes)

    processes.kill(leader, signal.SIGKILL)
    assert processes.wait_exit(leader, 5) == -signal.SIGKILL
    killed_at = time.monotonic()
    after = enqueue_probe(QUEUE, sleep=0.2)

    wait_succeeded([after], 15, processes)
    print(f"\nMEASURED failover: a job enqueued after the leader's SIGKILL finished in "
          f"{time.monotonic() - killed_at:.1f}s")
    assert processes.leader(CANDIDATES) == standby
    assert_ran_exactly_once([before, after])
