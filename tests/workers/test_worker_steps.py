"""Worker bootsteps of workers.worker_steps that need no running worker: the memory cap of a worker
without pool children, and gc.freeze before the pool forks."""
import gc
import os
import signal
import types

from celery.concurrency.thread import TaskPool as ThreadPool

from workers import worker_steps
from workers.worker_steps import FreezeHeapBeforeFork, MemoryCapWithoutChildren


class FakeTimer:
    def __init__(self) -> None:
        self.calls = []

    def call_repeatedly(self, seconds, fn):
        self.calls.append((seconds, fn))


def fake_worker(pool, cap_kb):
    return types.SimpleNamespace(pool=pool, max_memory_per_child=cap_kb, timer=FakeTimer(), hostname="w@h")


def test_a_threads_worker_above_the_memory_cap_asks_itself_for_a_warm_shutdown(monkeypatch):
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    worker = fake_worker(ThreadPool.__new__(ThreadPool), cap_kb=1)  # 1 KiB: any process is above it
    MemoryCapWithoutChildren(worker).start(worker)
    [(seconds, check)] = worker.timer.calls
    assert seconds == worker_steps.MEMORY_CHECK_SECONDS
    check()
    assert killed == [signal.SIGTERM]


def test_below_the_cap_nothing_happens(monkeypatch):
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    worker = fake_worker(ThreadPool.__new__(ThreadPool), cap_kb=100 * 1024 * 1024)
    MemoryCapWithoutChildren(worker).start(worker)
    worker.timer.calls[0][1]()
    assert killed == []


def test_a_prefork_worker_leaves_the_cap_to_its_children_option():
    from celery.concurrency.prefork import TaskPool as PreforkPool

    worker = fake_worker(PreforkPool.__new__(PreforkPool), cap_kb=1)
    MemoryCapWithoutChildren(worker).start(worker)
    assert worker.timer.calls == []


def test_the_heap_is_frozen_when_the_step_is_built():
    gc.unfreeze()
    try:
        FreezeHeapBeforeFork(types.SimpleNamespace())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
