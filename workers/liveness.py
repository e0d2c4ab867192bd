"""Which of some processes of this host are gone, by their pids.

Standard library only: deploy/supervisor_events.py (no Django) asks it the same way as a worker
starting under its node name (workers.worker_steps.ReleasePreviousLife). Both run on the host
whose worker processes they ask about (a node name carries its host), under the same supervisord.
"""
from __future__ import annotations

import os
from collections.abc import Iterable


def gone_pids(pids: Iterable[int]) -> set[int]:
    """The pids of `pids` that no process has now. A pid that another process took since (a reuse) is
    taken for alive: its jobs then wait for their lease, which is the safe mistake."""
    return {pid for pid in pids if pid > 0 and not _alive(pid)}  # kill(0, ...) would mean our own group


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
