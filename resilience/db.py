"""The database's clock, which every part compares its times with."""
from __future__ import annotations

from datetime import datetime

from django.db import connection


def db_now() -> datetime:
    """The database's clock: the ledger's and the heartbeats' times are all written with it, so
    comparing them with it is right whatever the web host's clock says."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]
