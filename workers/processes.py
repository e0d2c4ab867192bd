"""Process metrics, through psutil: one reading of the operating system's process table for the
heartbeats (a worker tree's resident memory), the memory cap, the benchmarks (CPU, PSS) and chaos
(what a run started). A process that exited meanwhile, or that we may not read, counts as nothing:
a metric never fails a heartbeat."""
from __future__ import annotations

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except _GONE:
        return None


def rss_bytes(pid: int) -> int:
    process = _process(pid)
    try:
        return process.memory_info().rss if process else 0
    except _GONE:
        return 0


def child_pids(pid: int) -> list[int]:
    """Live (not zombie) direct children of `pid`."""
    process = _process(pid)
    if process is None:
        return []
    try:
        children = process.children()
    except _GONE:
        return []
    live = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.append(child.pid)
        except _GONE:
            continue
    return live


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    process = _process(pid)
    if process is None:
        return []
    try:
        return [pid, *(child.pid for child in process.children(recursive=True))]
    except _GONE:
        return [pid]


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its children (a Celery worker and its prefork pool)."""
    return rss_bytes(pid) + sum(rss_bytes(child) for child in child_pids(pid))


def rss_and_pss_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB; PSS shares each page among the processes that map it. (0, 0) when gone."""
    process = _process(pid)
    try:
        info = process.memory_full_info() if process else None
    except _GONE:
        info = None
    if info is None:
        return 0, 0
    return info.rss // 1024, getattr(info, "pss", info.rss) // 1024


def cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    """CPU seconds (user + system) a live process used, and, if asked, its children that exited and
    were reaped."""
    process = _process(pid)
    try:
        times = process.cpu_times() if process else None
    except _GONE:
        return 0.0
    if times is None:
        return 0.0
    reaped = (times.children_user + times.children_system) if with_reaped_children else 0.0
    return times.user + times.system + reaped


def cmdline(pid: int) -> str:
    process = _process(pid)
    try:
        return " ".join(process.cmdline()) if process else ""
    except _GONE:
        return ""


def pids_with_environment(name: str, value: str) -> list[int]:
    """Processes (ours to read) whose environment has name=value."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(name) == value:
                found.append(process.pid)
        except _GONE:
            continue
    return found
