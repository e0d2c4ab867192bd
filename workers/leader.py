"""Leader election for the dispatcher: one leads, the others wait to take over.

On PostgreSQL a session advisory lock held on its own connection: if the leader's process
dies, PostgreSQL drops the connection and the lock with it, and a candidate takes over on its
next try. On SQLite (single-host development) an exclusive file lock does the same.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
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


class PostgresLeadership:
    def __init__(self, key: int = DISPATCHER_LOCK_KEY) -> None:
        self.key = key
        self._conn = None
        self._unreachable = False  # warn once per outage, not at every try

    def _connect(self):
        import psycopg2

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        # Keepalives notice a vanished server; the lock is gone with it, so leadership must end too.
        conn = psycopg2.connect(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                                application_name="resilience-dispatcher", **params)
        conn.autocommit = True
        return conn

    def try_acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                acquired = bool(cur.fetchone()[0])
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
        try:
            with self._conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objid = %s",
                    [self.key & 0xFFFFFFFF],
                )
                return cur.fetchone()[0] > 0
        except Exception:
            self._drop()
            return False

    def release(self) -> None:
        self._drop()  # closing the session releases the lock

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None


class FileLeadership:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def dispatcher_leadership() -> Leadership:
    if connections["default"].vendor == "postgresql":
        return PostgresLeadership()
    return FileLeadership(settings.VAR_DIR / "dispatcher.lock")
