"""Leader election for the dispatcher: one leads, the others wait to take over.

On PostgreSQL a session advisory lock held on its own connection: if the leader's process
dies, PostgreSQL drops the connection and the lock with it, and a candidate takes over on its
next try.

A leader can also vanish without its session ending: its host loses power, its VM freezes, its
network is cut. PostgreSQL would keep the lock until TCP gives up on the connection (two hours
with default keepalives), and nothing would be dispatched or reaped meanwhile. So the lock session
carries its own deadline: the leader queries it at every round, and PostgreSQL ends a session that
stays silent for DISPATCHER_LEADER_TIMEOUT_SECONDS (idle_session_timeout, PostgreSQL 14+), which
frees the lock for another candidate. That works whatever happens to the packets, even behind a
proxy or a NAT that keeps the TCP connection looking alive; keepalives and tcp_user_timeout on both
ends are there for older servers and for the client's side. The old leader, for its part, waits at
most half that for any answer on the lock connection, then stops leading rather than hang in it.

Session advisory locks need a direct connection (or a session-pooling PgBouncer): a
transaction-pooling pooler would hand the lock's session to other clients.
"""
from __future__ import annotations

import logging
import select
import time
from typing import Protocol

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# Arbitrary constant naming "the dispatcher" among advisory locks.
DISPATCHER_LOCK_KEY = 0x5E51_11E7


class Leadership(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class LockSessionTimeout(Exception):
    """The lock connection did not answer in time: the network or the server is gone."""


def _wait(conn, deadline: float) -> None:
    """Drive an asynchronous psycopg2 connection until its connect or query completes, or raise
    LockSessionTimeout at `deadline` (time.monotonic()). A blocking call would wait for as long as
    TCP does, which is what a cut network makes unbounded."""
    import psycopg2.extensions as ext

    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockSessionTimeout("no answer from PostgreSQL on the leader's lock connection")
        if state == ext.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == ext.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:
            raise LockSessionTimeout(f"unexpected connection state {state}")


class PostgresLeadership:
    def __init__(self, key: int = DISPATCHER_LOCK_KEY, timeout: float | None = None) -> None:
        self.key = key
        self.timeout = settings.DISPATCHER_LEADER_TIMEOUT_SECONDS if timeout is None else timeout
        # Below the server's deadline, so that a leader cut off gives up before another can lead.
        self.answer_within = self.timeout / 2
        self._conn = None
        self._unreachable = False  # warn once per outage, not at every try

    def _connect(self):
        import psycopg2

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        timeout_ms = int(self.timeout * 1000)
        probe_every = max(1, int(self.timeout / 6))
        # Client side: notice a vanished server (the lock is gone with it, so leadership must end too).
        conn = psycopg2.connect(**{
            **params, "async_": True, "application_name": "resilience-dispatcher",
            "keepalives": 1, "keepalives_idle": probe_every, "keepalives_interval": probe_every,
            "keepalives_count": 3, "tcp_user_timeout": timeout_ms,
        })
        try:
            _wait(conn, time.monotonic() + self.answer_within)
            # Server side: end this session, and with it the lock, once the leader falls silent.
            session = [f"SET tcp_keepalives_idle = {probe_every}", f"SET tcp_keepalives_interval = {probe_every}",
                       "SET tcp_keepalives_count = 3", f"SET tcp_user_timeout = {timeout_ms}"]
            if conn.server_version >= 140000:
                session.append(f"SET idle_session_timeout = {timeout_ms}")
            else:
                logger.warning("leader election: PostgreSQL %s has no idle_session_timeout (14+): a leader "
                               "cut off keeps the lock until TCP keepalives give up", conn.server_version)
            self._query(conn, "; ".join(session))
        except BaseException:
            conn.close()
            raise
        return conn

    def _query(self, conn, sql: str, params: list | None = None):
        with conn.cursor() as cur:
            cur.execute(sql, params)
            _wait(conn, time.monotonic() + self.answer_within)
            return cur.fetchone() if cur.description else None

    def _try_lock(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return bool(self._query(self._conn, "SELECT pg_try_advisory_lock(%s)", [self.key])[0])

    def try_acquire(self) -> bool:
        try:
            had_session = self._conn is not None
            try:
                acquired = self._try_lock()
            except Exception:
                if not had_session:
                    raise
                # The server may have ended an old session (idle too long, or restarted): try a
                # fresh one before calling PostgreSQL unreachable.
                self._drop()
                acquired = self._try_lock()
        except Exception as exc:
            if not self._unreachable:
                logger.warning("leader election: cannot reach PostgreSQL (%s); retrying",
                               (str(exc).strip().splitlines() or [type(exc).__name__])[0])
                self._unreachable = True
            self._drop()
            return False
        if self._unreachable:
            logger.warning("leader election: PostgreSQL reachable again")
            self._unreachable = False
        return acquired

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            row = self._query(
                self._conn,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND objid = %s",
                [self.key & 0xFFFFFFFF],
            )
            return row[0] > 0
        except Exception as exc:
            logger.warning("leader election: the lock session failed (%s)",
                           (str(exc).strip().splitlines() or [type(exc).__name__])[0])
            self._drop()
            return False

    def release(self) -> None:
        # Closing the session releases the lock too, but only once the server has noticed; unlocking
        # first hands it over by the time release() returns.
        if self._conn is not None and not self._conn.closed:
            try:
                self._query(self._conn, "SELECT pg_advisory_unlock_all()")
            except Exception:
                pass
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


def dispatcher_leadership() -> Leadership:
    return PostgresLeadership()
