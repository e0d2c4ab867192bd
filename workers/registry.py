"""What the apps plug into the runtime. The runtime (workers/) imports no app: each app declares here,
from its AppConfig.ready, what the runtime needs from it, and the runtime reads only this registry.

- `queue(name, task=...)`: the app owns a queue (its concurrency and rate are settings, QUEUE_*) and
  the Celery task that runs its jobs;
- `gate(queue, ...)`: a check made before a claimed job of the queue starts (`hold`: the job waits,
  its attempt not made, workers.runner) and, on the dispatcher's leader, a sweep that pauses or resumes the queue
  (the AI budget, the email breaker);
- `duty(name, run, every=...)`: a periodic duty the leader runs on one process only, on its own
  interval and time slice, outside the dispatch round (workers.duties);
- `keep_jobs(name, job_ids)`: finished jobs that retention must keep (a dead job whose dead-letter
  entry is unresolved); `prune(name, prune)`: a table that grows with traffic, pruned a slice at a
  time after its retention;
- `dead_letter_store(store)`: where a job that gave up is recorded for people to resolve (dlq);
- `on_cancel(queue, handler)`: what a person's cancel of the queue's jobs (ledger.cancel_not_started) means
  for the rows they were about: `handler(job_ids)` runs in the cancel's transaction, so the job and its row
  never disagree (a message left `pending` for ever, a submission never processed).

Registering twice under one name replaces the first (a reloaded app in tests), never duplicates it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db.models import QuerySet


@dataclass(frozen=True)
class Queue:
    name: str
    task: str
    app: str


@dataclass(frozen=True)
class Duty:
    name: str
    # Does one bounded turn of work; returns True when it stopped with more to do (its slice ran
    # out), so that it gets its next turn soon rather than after `every`.
    run: Callable[[], bool | None]
    every: float
    # A turn's longest statement: the leader's duties share one connection and one thread, and a
    # duty that hangs in a query must not keep the others waiting for long.
    slice_seconds: float = 5.0


@dataclass(frozen=True)
class Gate:
    queue: str
    name: str
    # Before a claimed job of `queue` starts: why it must wait (the runtime gives it back, its attempt
    # not counted), or None. May pause the queue itself, so that no more of its jobs are published.
    hold: Callable[[], str | None]


@dataclass(frozen=True)
class CancelHook:
    queue: str
    # Marks the app's rows of the cancelled jobs (ids as text, all of `queue`), in the cancel's transaction.
    handler: Callable[[list[str]], Any]


class DeadLetterStore(Protocol):
    def __call__(self, *, queue_name: str, job_id: str, job_data: dict[str, Any], error_message: str,
                 error_stack: str, attempts_made: int) -> Any: ...


@dataclass(frozen=True)
class Keeper:
    name: str
    # Ids (as text) of finished jobs that must stay in the ledger: a subquery, never a list.
    job_ids: Callable[[], QuerySet]


@dataclass(frozen=True)
class Pruner:
    name: str
    # Deletes at most `limit` rows past their retention; returns how many it deleted.
    prune: Callable[[int], int]


_queues: dict[str, Queue] = {}
_gates: dict[tuple[str, str], Gate] = {}
_duties: dict[str, Duty] = {}
_keepers: dict[str, Keeper] = {}
_pruners: dict[str, Pruner] = {}
_dead_letter_store: list[DeadLetterStore] = []
_cancel_hooks: dict[str, CancelHook] = {}


def queue(name: str, *, task: str, app: str) -> None:
    if name not in settings.QUEUE_NAMES:
        raise ValueError(f"app {app} registers queue {name!r}, which is not configured: QUEUE_NAMES is "
                         f"{', '.join(settings.QUEUE_NAMES)}")
    owner = _queues.get(name)
    if owner is not None and owner.app != app:
        raise ValueError(f"queue {name!r} is registered by {owner.app} and {app}: a queue has one app")
    _queues[name] = Queue(name, task, app)


def gate(queue_name: str, name: str, *, hold: Callable[[], str | None], sweep: Callable[[], Any],
         every: float = 1.0) -> None:
    """`sweep` is the gate's leader duty ("<name> gate"), run every `every` seconds."""
    _gates[(queue_name, name)] = Gate(queue_name, name, hold)
    duty(f"{name} gate", sweep, every=every)


def duty(name: str, run: Callable[[], bool | None], *, every: float, slice_seconds: float = 5.0) -> None:
    if every <= 0 or slice_seconds <= 0:
        raise ValueError(f"duty {name!r}: every and slice_seconds must be positive")
    _duties[name] = Duty(name, run, every, slice_seconds)


def keep_jobs(name: str, job_ids: Callable[[], QuerySet]) -> None:
    _keepers[name] = Keeper(name, job_ids)


def prune(name: str, prune_rows: Callable[[int], int]) -> None:
    _pruners[name] = Pruner(name, prune_rows)


def dead_letter_store(store: DeadLetterStore) -> None:
    _dead_letter_store[:] = [store]


def on_cancel(queue_name: str, handler: Callable[[list[str]], Any]) -> None:
    """One hook per queue: the queue's rows belong to the one app that owns it."""
    if queue_name not in settings.QUEUE_NAMES:
        raise ValueError(f"a cancel hook for queue {queue_name!r}, which is not configured: QUEUE_NAMES is "
                         f"{', '.join(settings.QUEUE_NAMES)}")
    _cancel_hooks[queue_name] = CancelHook(queue_name, handler)


# --- what the runtime reads ---------------------------------------------------------------------

def queues() -> dict[str, Queue]:
    return dict(_queues)


def queue_of_task(task: str) -> str | None:
    return next((q.name for q in _queues.values() if q.task == task), None)


def gates(queue_name: str) -> list[Gate]:
    return [g for (q, _), g in sorted(_gates.items()) if q == queue_name]


def duties() -> list[Duty]:
    return [_duties[name] for name in sorted(_duties)]


def keepers() -> list[Keeper]:
    return [_keepers[name] for name in sorted(_keepers)]


def pruners() -> list[Pruner]:
    return [_pruners[name] for name in sorted(_pruners)]


def cancel_hook(queue_name: str) -> CancelHook | None:
    return _cancel_hooks.get(queue_name)


def store_dead_letter(**entry: Any) -> Any:
    if not _dead_letter_store:
        raise RuntimeError("no dead-letter store is registered (the dlq app is not installed?): "
                           "a job that gave up would be recorded nowhere")
    return _dead_letter_store[0](**entry)


def missing() -> list[str]:
    """What the runtime cannot work without, as sentences (workers.checks turns them into errors)."""
    problems = [f"queue {name!r} is configured (QUEUE_NAMES) but no installed app registers it"
                for name in settings.QUEUE_NAMES if name not in _queues]
    if not _dead_letter_store:
        problems.append("no dead-letter store is registered (install the dlq app)")
    return problems
