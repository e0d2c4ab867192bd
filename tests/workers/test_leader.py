"""Leader election against real PostgreSQL: a leader that falls silent or is cut off loses the lock."""
import time

import pytest
from django.db import connections

from tests.system.processes import database_proxy
from workers.leader import PostgresLeadership

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_leader_that_falls_silent_loses_its_lock_to_another_candidate():
    """Given a leader whose lock session allows 2 s of silence; when it sends nothing for longer (as
    a frozen host or a cut network would), then PostgreSQL ends its session and another candidate
    leads, and the old leader learns it lost at its next check."""
    leader, candidate = PostgresLeadership(timeout=2), PostgresLeadership(timeout=2)
    try:
        assert leader.try_acquire() is True
        assert candidate.try_acquire() is False
        time.sleep(3.5)  # silent past the timeout (the candidate too, but it holds nothing)
        assert candidate.try_acquire() is True
        assert leader.still_held() is False
    finally:
        leader.release()
        candidate.release()


def test_a_healthy_leader_keeps_its_lock_past_the_timeout():
    leader, candidate = PostgresLeadership(timeout=3), PostgresLeadership(timeout=3)
    try:
        assert leader.try_acquire() is True
        for _ in range(10):  # 5 s of rounds, a check every half second
            time.sleep(0.5)
            assert leader.still_held() is True
        assert candidate.try_acquire() is False
    finally:
        leader.release()
        candidate.release()


def test_a_leader_whose_lock_connection_stops_answering_stops_leading(monkeypatch):
    """Given a leader whose lock connection goes through a proxy; when the proxy stops forwarding
    but keeps every socket open (TCP itself sees nothing wrong), then its next check gives up
    within half the timeout rather than hanging, and says the lock is not held."""
    db = connections["default"]
    proxy = database_proxy()
    proxy.start()
    params = {**db.get_connection_params(), "host": "127.0.0.1", "port": proxy.port}
    monkeypatch.setattr(db, "get_connection_params", lambda: dict(params))
    leader = PostgresLeadership(timeout=4)
    try:
        assert leader.try_acquire() is True and proxy.connections == 1
        proxy.freeze()
        asked = time.monotonic()
        assert leader.still_held() is False
        assert time.monotonic() - asked < 4
        assert leader.try_acquire() is False  # nor can it lead again while cut off
    finally:
        proxy.thaw()
        proxy.cut()
        leader.release()
