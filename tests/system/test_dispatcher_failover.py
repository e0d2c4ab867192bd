"""Dispatcher failover with real processes: two dispatcher candidates (one leads by holding a
PostgreSQL advisory lock) and a worker.

Killed leader: PostgreSQL ends the dead leader's session and with it the lock; the other candidate
takes it on its next try, and a job enqueued after the kill is dispatched and finishes within seconds.
Vanished leader: its connections stay open but nothing more arrives (frozen host, cut network);
PostgreSQL ends its silent lock session after DISPATCHER_LEADER_TIMEOUT_SECONDS and the other
candidate takes over.
"""
import signal
import time

import pytest

from tests.system.checks import QUEUE, assert_ran_exactly_once, wait_succeeded
from tests.system.processes import database_proxy, database_url, wait_for
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


def test_a_leader_cut_off_with_its_connections_left_open_is_replaced_within_30s(processes):
    """Given a leading dispatcher whose PostgreSQL connections go through a proxy, a standby
    connected directly, and a worker; when the proxy stops forwarding but keeps every socket open
    (a frozen VM, a host gone dark: the proxy's kernel still acknowledges, so no TCP keepalive or
    tcp_user_timeout ever fires); then the standby leads and a job enqueued after the freeze
    finishes well within 30 s (before the fix: not until the connection died, two hours by
    default); and when the proxy forwards again, the old leader stands by."""
    proxy = database_proxy()
    proxy.start()
    try:
        processes.configure(LOG_LEVEL="INFO")  # the leader says so in its log
        processes.worker(QUEUE, "primary", 2)
        processes.configure(TEST_DATABASE_URL=database_url(proxy))
        processes.dispatcher("primary")
        processes.configure(TEST_DATABASE_URL=database_url())
        processes.wait_ready(f"{QUEUE}@primary")
        assert wait_for(lambda: processes.leader(["dispatcher-primary"]) is not None, 20), processes.logs()
        processes.dispatcher("backup")
        before = enqueue_probe(QUEUE)
        wait_succeeded([before], 15, processes)
        assert "now the leader" not in processes.log_text("dispatcher-backup")

        proxy.freeze()
        frozen_at = time.monotonic()
        after = enqueue_probe(QUEUE)
        wait_succeeded([after], 30, processes)
        print(f"\nMEASURED leader cut off (connections open, nothing forwarded): a job enqueued after the "
              f"freeze finished in {time.monotonic() - frozen_at:.1f}s")
        assert "now the leader" in processes.log_text("dispatcher-backup")

        proxy.thaw()
        assert wait_for(lambda: "leadership lost" in processes.log_text("dispatcher-primary"), 30), processes.logs()
        last = enqueue_probe(QUEUE)
        wait_succeeded([last], 15, processes)
        primary_log = processes.log_text("dispatcher-primary")
        assert primary_log.count("now the leader") == 1  # it stands by: the backup keeps the lock
        assert all(processes.alive(name) for name in processes.procs), processes.logs()
        assert_ran_exactly_once([before, after, last])
    finally:
        proxy.thaw()
        proxy.cut()
