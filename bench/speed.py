"""make bench, the speed section: throughput and enqueue-to-start latency of the ledger path beside
plain Celery, on the same Redis, in the same run, with the same worker options.

Plain Celery (bench/bare.py): Celery's defaults with acks_late, prefork at its default concurrency
(the machine's cores), a task that does one INCR on a Redis connection it keeps. The ledger side
(bench/ledger_noop.py): the same worker options on this project's app, one INCR in the handler, a
dispatcher; rate limits lifted so only the path's own cost is measured.

  throughput   N jobs queued at once (plain: N apply_async; ledger: one enqueue_many), timed until
               the last one ran.
  latency      one job at a time, the next queued when the last one ran: plain, from apply_async to
               the task's start; ledger, from the submission (the job row's created_at) to its
               started_at (the claim).

  cpu per job  while the N jobs drain: CPU time (utime + stime from /proc) of the worker's main
               process, its pool children, the dispatcher (the ledger) or the publishing loop (plain),
               and the PostgreSQL backends of the bench database, divided by N. On a machine whose
               cores are the bottleneck this is what sets the throughput: the profile of the gap.

The two sides run in turn, never at once (each would slow the other on a 2-core machine), and
`rounds` times: each round's ratios compare figures measured minutes apart at most.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field

from workers.processes import child_pids, cpu_seconds

LEDGER_QUEUE = "lead-processing"
# The same worker options on both sides; neither names a concurrency, so both get Celery's default.
WORKER_OPTIONS = ["--without-gossip", "--without-mingle", "-l", "warning"]


CPU_PARTS = ("worker main process", "worker pool children", "dispatcher / publishing", "PostgreSQL backends")


@dataclass
class SideFigures:
    throughput: list[float] = field(default_factory=list)  # jobs/s, one per round
    p50_ms: list[float] = field(default_factory=list)  # one per round
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)  # part -> CPU ms per job, one per round

    def addcpu_seconds(self, per_job_ms: dict[str, float]) -> None:
        for part, ms in per_job_ms.items():
            self.cpu_ms.setdefault(part, []).append(ms)


def _database_backends() -> list[int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cur.fetchall()]


class CpuMeter:
    """CPU seconds per part, read at the start and the end of the drain; the difference per job."""

    def __init__(self, worker_pid: int, dispatcher_pid: int | None) -> None:
        self.worker_pid, self.dispatcher_pid = worker_pid, dispatcher_pid

    def read(self) -> dict[str, dict[int, float]]:
        return {
            "worker main process": {self.worker_pid: cpu_seconds(self.worker_pid, with_reaped_children=True)},
            "worker pool children": {c: cpu_seconds(c) for c in child_pids(self.worker_pid)},
            "dispatcher / publishing": ({self.dispatcher_pid: cpu_seconds(self.dispatcher_pid, with_reaped_children=True)}
                                        if self.dispatcher_pid else {}),
            "PostgreSQL backends": {pid: cpu_seconds(pid) for pid in _database_backends()},
        }

    @staticmethod
    def per_job_ms(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], jobs: int,
                   publishing: float = 0.0) -> dict[str, float]:
        """Per part, CPU ms per job: what each process used between the readings (one that started
        meanwhile, from zero), plus `publishing`, the CPU of this process's apply_async loop. A pool
        child's own time is counted while it lives; once it exits and is reaped, its parent's cutime
        holds it, so the main process's share then includes it."""
        out = {}
        for part in CPU_PARTS:
            used = sum(seconds - before[part].get(pid, 0.0) for pid, seconds in after[part].items())
            if part == "dispatcher / publishing":
                used += publishing
            out[part] = used * 1000 / jobs
        return out


@dataclass
class SpeedFigures:
    bare: SideFigures = field(default_factory=SideFigures)
    ledger: SideFigures = field(default_factory=SideFigures)
    jobs: int = 0
    samples: int = 0
    concurrency: int = 0
    peers: dict[str, SideFigures] = field(default_factory=dict)  # bench/peers.py PEERS measured, in that order
    peers_skipped: str = ""  # why the peers were not measured, when they were not

    def side(self, name: str) -> SideFigures:
        return {"bare": self.bare, "ledger": self.ledger}.get(name) or self.peers[name]

    def ratios(self, ours: str, theirs: str, measure: str) -> list[float]:
        """Per round, `ours`'s figure over `theirs`'s (measure: "throughput" or "p50_ms")."""
        return [a / b for a, b in zip(getattr(self.side(ours), measure), getattr(self.side(theirs), measure))]

    def cpu_total(self, name: str) -> float:
        """CPU ms per job, all processes: the sum of the parts' medians."""
        return sum(statistics.median(v) for v in self.side(name).cpu_ms.values())

    def throughput_ratios(self) -> list[float]:
        return [ours / bare for ours, bare in zip(self.ledger.throughput, self.bare.throughput)]

    def latency_ratios(self) -> list[float]:
        return [ours / bare for ours, bare in zip(self.ledger.p50_ms, self.bare.p50_ms)]


def _wait_count(client, key: str, at_least: int, timeout: float, poll: float) -> None:
    deadline = time.monotonic() + timeout
    while int(client.get(key) or 0) < at_least:
        if time.monotonic() > deadline:
            raise SystemExit(f"speed bench: {key} reached {int(client.get(key) or 0)}, not {at_least}, "
                             f"in {timeout:g}s")
        time.sleep(poll)


def bare_round(procs_factory, redis_url: str, jobs: int, samples: int) -> tuple[float, float, dict[str, float]]:
    import redis

    from bench import bare

    client = redis.Redis.from_url(redis_url)
    procs = procs_factory()
    try:
        worker = procs.start("bare", [sys.executable, "-m", "celery", "-A", "bench.bare", "worker", "-Q", bare.QUEUE,
                                      "-n", "bare@bench.%h", *WORKER_OPTIONS])
        procs.wait_ready(["bare@bench"])
        client.delete(bare.COUNTER, bare.WAITS)
        meter = CpuMeter(worker.pid, None)
        before = meter.read()
        started = time.monotonic()
        publishing = time.process_time()
        for _ in range(jobs):
            bare.bare_noop.apply_async()
        publishing = time.process_time() - publishing
        _wait_count(client, bare.COUNTER, jobs, 300, 0.01)
        throughput = jobs / (time.monotonic() - started)
        cpu = CpuMeter.per_job_ms(before, meter.read(), jobs, publishing)
        for i in range(samples):
            bare.bare_noop.apply_async(args=[time.time()])
            _wait_count(client, bare.COUNTER, jobs + i + 1, 60, 0.0005)
        waits = [float(w) * 1000 for w in client.lrange(bare.WAITS, 0, -1)]
    finally:
        procs.stop()
    return throughput, statistics.median(waits), cpu


def ledger_round(procs_factory, redis_url: str, jobs: int, samples: int) -> tuple[float, float, dict[str, float]]:
    import redis
    from django.db.models import F

    from bench import ledger_noop
    from workers import ledger
    from workers.models import Job

    client = redis.Redis.from_url(redis_url)
    procs = procs_factory()
    try:
        worker = procs.start("ledger", [sys.executable, "-m", "workers.run_celery", "worker", "-Q", LEDGER_QUEUE,
                                        "-n", f"{LEDGER_QUEUE}@ledger.%h", "-I", "bench.ledger_noop", *WORKER_OPTIONS])
        dispatcher = procs.dispatcher("ledger")
        procs.wait_ready([f"{LEDGER_QUEUE}@ledger"])
        tidy_ledger()
        client.delete(ledger_noop.COUNTER)
        meter = CpuMeter(worker.pid, dispatcher.pid)
        before = meter.read()
        started = time.monotonic()
        ledger.enqueue_many(LEDGER_QUEUE, ledger_noop.TASK, [(uuid.uuid4(), {}, None) for _ in range(jobs)])
        _wait_count(client, ledger_noop.COUNTER, jobs, 300, 0.01)
        throughput = jobs / (time.monotonic() - started)
        cpu = CpuMeter.per_job_ms(before, meter.read(), jobs)
        ids = []
        for i in range(samples):
            ids.append(ledger.enqueue(LEDGER_QUEUE, ledger_noop.TASK, {}).id)
            _wait_count(client, ledger_noop.COUNTER, jobs + i + 1, 60, 0.0005)
        time.sleep(0.5)  # the last completion commits a moment after its INCR
        _check_each_ran_once(client, jobs + samples)
        waits = [w.total_seconds() * 1000 for w in Job.objects.filter(id__in=ids).annotate(
            waited=F("started_at") - F("created_at")).values_list("waited", flat=True)]
    finally:
        procs.stop()
    return throughput, statistics.median(waits), cpu


def tidy_ledger() -> None:
    """An empty ledger and results table, vacuumed: this machine's PostgreSQL runs without autovacuum,
    and the dead rows of earlier phases (a million in the health phase) would slow every round after
    them, as they would not under autovacuum in production."""
    from django.db import connection
    from django_celery_results.models import TaskResult

    from workers.retention import fold_job_counts
    from workers.models import Job

    Job.objects.all().delete()
    TaskResult.objects.all().delete()
    fold_job_counts()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE workers_job, workers_jobcount, django_celery_results_taskresult")


def _check_each_ran_once(client, expected: int) -> None:
    """Nothing lost, nothing doubled: every job succeeded once, and the handler ran once per job."""
    from bench import ledger_noop
    from workers.models import Job

    ran = int(client.get(ledger_noop.COUNTER) or 0)
    states = {s: Job.objects.filter(state=s).count() for s in Job.State.values}
    attempts = sorted(set(Job.objects.values_list("attempts", flat=True)))
    if ran != expected or states["succeeded"] != expected or attempts != [1]:
        raise SystemExit(f"speed bench: {expected} jobs, handler ran {ran} times, states {states}, "
                         f"attempts {attempts}")


def bench_speed(procs_factory, redis_url: str, jobs: int, samples: int, rounds: int, log, *,
                ledger: bool = True, peers: bool = True, bench_db: str = "") -> SpeedFigures:
    """`rounds` rounds, each plain Celery, the ledger (unless not `ledger`), then each peer (unless not
    `peers`, or the bench venv cannot be made: then `peers_skipped` says why), one side at a time."""
    out = SpeedFigures(jobs=jobs, samples=samples, concurrency=os.cpu_count() or 1)
    python = None
    if peers:
        from bench import peers as peer_bench

        try:
            log(f"peers: the bench venv {peer_bench.VENV} (made on first use)")
            python = peer_bench.venv_python()
        except peer_bench.PeersUnavailable as exc:
            out.peers_skipped = str(exc)
            log(f"peers not measured: {exc}")
    for n in range(rounds):
        log(f"speed round {n + 1}/{rounds}: plain Celery, {jobs} jobs, then {samples} one at a time")
        throughput, p50, cpu = bare_round(procs_factory, redis_url, jobs, samples)
        out.bare.throughput.append(throughput)
        out.bare.p50_ms.append(p50)
        out.bare.addcpu_seconds(cpu)
        log(f"  plain Celery {throughput:.0f} jobs/s, p50 {p50:.2f} ms")
        if ledger:
            throughput, p50, cpu = ledger_round(procs_factory, redis_url, jobs, samples)
            out.ledger.throughput.append(throughput)
            out.ledger.p50_ms.append(p50)
            out.ledger.addcpu_seconds(cpu)
            log(f"  ledger {throughput:.0f} jobs/s, p50 {p50:.2f} ms")
        for peer in peer_bench.PEERS if python else ():
            throughput, p50, cpu = peer_bench.peer_round(peer, procs_factory, python, bench_db, redis_url, jobs,
                                                         samples)
            side = out.peers.setdefault(peer, SideFigures())
            side.throughput.append(throughput)
            side.p50_ms.append(p50)
            side.addcpu_seconds(cpu)
            log(f"  {peer} {throughput:.0f} jobs/s, p50 {p50:.2f} ms")
    return out


def spread(values: list[float], fmt: str) -> str:
    """The median, and the range over the rounds when there were several."""
    mid = format(statistics.median(values), fmt)
    if len(values) < 2:
        return mid
    return f"{mid} ({format(min(values), fmt)} to {format(max(values), fmt)})"
