"""What this host's processes use and are, through psutil: the one place the project reads them (the
heartbeats, the memory cap of a worker without pool children, the dev runner, bench and chaos).

A process may exit between being found and being read: it then counts 0 (or is left out), so a
heartbeat or a bench reading never fails over it. Standard library and psutil only (no Django), so
bench and chaos use it before any settings load.

RSS is psutil's memory_info().rss, which on Linux is /proc/<pid>/statm's resident pages times the
page size: the figure the heartbeats reported before psutil.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable

import psutil

# Gone meanwhile (ZombieProcess is a NoSuchProcess), or another user's and not ours to read.
_UNREADABLE = (psutil.NoSuchProcess, psutil.AccessDenied)


def rss_bytes(pid: int) -> int:
    """Resident memory of one process in bytes; 0 when it is gone or unreadable."""
    try:
        return psutil.Process(pid).memory_info().rss
    except _UNREADABLE:
        return 0


def child_pids(pid: int) -> list[int]:
    """The live children of `pid` (a Celery worker's prefork pool): zombies, which hold no memory of
    their own and run nothing, left out."""
    try:
        children = psutil.Process(pid).children()
    except _UNREADABLE:
        return []
    live = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append(child.pid)
        except _UNREADABLE:
            continue
    return live


def tree_rss_bytes(pid: int) -> int:
    """Resident memory in bytes of `pid` and its live children: a worker's main process and its
    prefork pool, what its heartbeat reports. A page shared by parent and children counts in each,
    so this overstates a forked pool (bench reports PSS beside it for that reason)."""
    return rss_bytes(pid) + sum(rss_bytes(child) for child in child_pids(pid))


def process_tree(pid: int) -> list[int]:
    """`pid` first, then every descendant (the children of its threads included), zombies too: what
    bench sums a part's memory over and chaos picks pool children from."""
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except _UNREADABLE:
        descendants = []
    return [pid, *(child.pid for child in descendants)]


def rss_and_pss_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) when it is gone or unreadable. PSS shares each page
    among the processes that map it (from /proc/<pid>/smaps_rollup on Linux), so the PSS of several
    processes adds up to what they use together; where the system reports no PSS, RSS stands in."""
    try:
        memory = psutil.Process(pid).memory_full_info()
    except _UNREADABLE:
        return 0, 0
    return memory.rss // 1024, getattr(memory, "pss", memory.rss) // 1024


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    """CPU seconds (user + system) a live process used, and if asked those of its children that
    exited and were reaped; 0.0 when it is gone or unreadable."""
    try:
        times = psutil.Process(pid).cpu_times()
    except _UNREADABLE:
        return 0.0
    reaped = times.children_user + times.children_system if with_reaped_children else 0.0
    return times.user + times.system + reaped


def cmdline(pid: int) -> str:
    """The process's command line, its arguments joined by spaces; "" when it is gone or unreadable."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except _UNREADABLE:
        return ""


def pids_with_environment(variable: str, value: str, *, besides: int | None = None) -> list[int]:
    """The processes (but `besides`) whose environment holds variable=value: what one run started,
    and their children, which inherit it. A process whose environment we may not read is left out."""
    found = []
    for process in psutil.process_iter():
        if process.pid == besides:
            continue
        try:
            if process.environ().get(variable) == value:
                found.append(process.pid)
        except _UNREADABLE:
            continue
    return found


def stop_process_groups(procs: Iterable[subprocess.Popen], timeout: float) -> None:
    """Stop processes each started in a session of its own (start_new_session): SIGTERM to each (a
    celery worker's warm shutdown), SIGKILL to those still running after `timeout`, then SIGKILL to
    each one's group, since a killed main process may leave its pool children behind."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
