"""make bench: measured figures for the runtime, printed as a table.

Runs its own worker and dispatcher processes against a bench database and Redis db (never the
system started by `make up`), so it can kill them. Phases:
  1. rate limits at their configured values (50/20/100/10 per minute by default), all four queues
     with a backlog, both pools for --windows periods, then the primary pool SIGKILLed for as long;
  2. crash recovery: a job whose worker main process is SIGKILLed mid-job, seconds until it runs
     again on the other pool (default lease);
  3. idle RSS of each pool;
  4. end-to-end throughput of no-op jobs with limits lifted: ledger + dispatcher + one worker,
     beside bare Celery (same Redis, same worker, same concurrency) in the same run;
  5. the health API, the dashboard's data and /metrics with a large ledger (--health-rows finished
     jobs, one million by default, loaded in one INSERT ... SELECT and removed after).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/resilience_bench")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUES = ("lead-processing", "site-generation", "email-sending", "delivery")
RATE_ENV = {"lead-processing": "LEAD_PROCESSING_RATE", "site-generation": "SITE_GENERATION_RATE",
            "email-sending": "EMAIL_SENDING_RATE", "delivery": "DELIVERY_RATE"}

os.environ.update({"DATABASE_URL": BENCH_DB, "REDIS_URL": BENCH_REDIS, "ENV_FILE": "", "LOG_LEVEL": "WARNING",
                   "DJANGO_SETTINGS_MODULE": "resilience.settings"})
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 40)
sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Processes:
    def __init__(self, log_dir: Path, **env: str) -> None:
        self.log_dir, self.env, self.procs = log_dir, {**os.environ, **env}, {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, queue: str, pool: str, concurrency: int, *extra: str) -> subprocess.Popen:
        return self.start(f"{queue}@{pool}", [sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q",
                                              queue, "-c", str(concurrency), "-n", f"{queue}@{pool}.%h",
                                              "--without-gossip", "--without-mingle", "-l", "warning", *extra])

    def dispatcher(self, pool: str) -> subprocess.Popen:
        return self.start(f"dispatcher-{pool}", [sys.executable, "manage.py", "run_dispatcher"])

    def wait_ready(self, names: list[str], timeout: float = 60) -> None:
        import django  # noqa: F401
        from celery import Celery

        deadline = time.monotonic() + timeout
        app = Celery(broker=BENCH_REDIS)
        pending = set(names)
        while pending and time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            for reply in replies:
                for node in reply:
                    pending = {n for n in pending if not node.startswith(n + ".")}
        if pending:
            raise SystemExit(f"workers did not start: {sorted(pending)} (logs in {self.log_dir})")

    def kill_group(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def rss_mb(pid: int) -> float:
    """RSS of a process and its children, MB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1024


def prepare() -> None:
    import django
    import psycopg2
    import redis
    from urllib.parse import urlsplit

    url = urlsplit(BENCH_DB)
    conn = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or "postgres",
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url.path.lstrip("/")])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{url.path.lstrip("/")}"')
    conn.close()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(BENCH_REDIS).flushdb()
    from workers.models import Job

    Job.objects.all().delete()




def reuse_ratio(starts: list[float], limit: int, period: float) -> float:
    """How promptly freed slots are used: period / mean(time from start i to start i+limit).

    With a backlog a sliding-window limiter lets start i+limit happen exactly one period after
    start i; any delay (dispatch latency, a dead pool's held jobs) lengthens the gap. 1.0 = the
    full rate. Unlike counting starts in a fixed interval, this is not skewed by where the
    repeating bursts of a sliding window fall."""
    starts = sorted(starts)
    gaps = [starts[i + limit] - starts[i] for i in range(len(starts) - limit)]
    return period / (sum(gaps) / len(gaps)) if gaps else 0.0


def start_both_pools(procs: Processes) -> None:
    """Every queue's worker and a dispatcher candidate in each pool, at the configured concurrency."""
    from django.conf import settings

    for pool in ("primary", "backup"):
        for queue in QUEUES:
            procs.worker(queue, pool, settings.QUEUE_CONCURRENCY[queue])
        procs.dispatcher(pool)
    procs.wait_ready([f"{q}@{p}" for q in QUEUES for p in ("primary", "backup")])


def bench_rate_limits(log_dir: Path, windows: int) -> list[list[str]]:
    import redis
    from django.conf import settings
    from workers import ratelimit
    from workers.probe import enqueue_probe

    limits = {q: settings.QUEUE_RATE_LIMITS[q] for q in QUEUES}
    period = max(p for _, p in limits.values())
    procs = Processes(log_dir)
    try:
        start_both_pools(procs)
        for queue, (count, _) in limits.items():
            for _ in range(count * (2 * windows + 6)):  # a backlog that outlasts both phases
                enqueue_probe(queue)
        client = redis.Redis.from_url(BENCH_REDIS)
        seen: dict[str, dict[bytes, float]] = {q: {} for q in QUEUES}

        def poll_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for queue in QUEUES:
                    # Up to "(+inf": the log's trust marker, scored +inf, is not a start.
                    log = client.zrangebyscore(ratelimit.KEY_PREFIX + queue, "-inf", "(+inf", withscores=True)
                    for member, score in log:
                        seen[queue][member] = score / 1000
                time.sleep(0.5)

        log(f"rate limits: both pools, {windows} window(s) of {period:g}s after the first")
        poll_for(period * (windows + 1))
        t_kill = float(client.time()[0])
        for queue in QUEUES:
            procs.kill_group(f"{queue}@primary")
        procs.kill_group("dispatcher-primary")
        log(f"rate limits: primary pool killed; backup alone for {windows} window(s) after the first")
        poll_for(period * (windows + 1))
        t_end = float(client.time()[0])
    finally:
        procs.stop()

    rows = []
    for queue in QUEUES:
        count, p = limits[queue]
        starts = sorted(seen[queue].values())
        both = [t for t in starts if t < t_kill]
        alone = [t for t in starts if t_kill + p <= t < t_end]  # after one period for the failover to settle
        rows.append([queue, f"{count}/{p:g}s", str(ratelimit.max_starts_in_any_window(starts, p)),
                     f"{reuse_ratio(both, count, p):.1%}", f"{reuse_ratio(alone, count, p):.1%}"])
    return rows


def bench_recovery(log_dir: Path) -> float:
    from django.conf import settings
    from workers.models import Job
    from workers.probe import enqueue_probe

    procs = Processes(log_dir, LEAD_PROCESSING_RATE="0")
    try:
        for pool in ("primary", "backup"):
            procs.worker("lead-processing", pool, 1)
            procs.dispatcher(pool)
        procs.wait_ready(["lead-processing@primary", "lead-processing@backup"])
        procs.kill_group("lead-processing@backup")  # so the job starts on primary
        job = enqueue_probe("lead-processing", sleep=60)
        while Job.objects.get(pk=job.pk).state != "running":
            time.sleep(0.1)
        procs.procs.pop("lead-processing@backup")
        procs.worker("lead-processing", "backup", 1)
        procs.wait_ready(["lead-processing@backup"])
        Job.objects.filter(pk=job.pk).update(payload={"sleep": 0, "fail": ""})  # the rerun finishes quickly
        os.kill(procs.procs["lead-processing@primary"].pid, signal.SIGKILL)  # the main process only
        killed = time.monotonic()
        while True:
            job.refresh_from_db()
            if job.state == "succeeded" or time.monotonic() - killed > 180:
                break
            time.sleep(0.1)
        log(f"recovery: lease {settings.JOB_LEASE_SECONDS:g}s, job {job.state} on {job.worker}")
        return time.monotonic() - killed
    finally:
        procs.stop()


def bench_idle_rss(log_dir: Path) -> dict[str, float]:
    procs = Processes(log_dir)
    try:
        start_both_pools(procs)
        time.sleep(5)
        return {pool: sum(rss_mb(p.pid) for name, p in procs.procs.items() if name.endswith(pool))
                for pool in ("primary", "backup")}
    finally:
        procs.stop()


def bench_throughput(log_dir: Path, jobs: int, concurrency: int) -> tuple[float, float]:
    import redis
    from django.db import transaction
    from bench.bare import COUNTER, bare_noop
    from workers.models import Job
    from workers.probe import enqueue_probe

    no_limits = {env: "0" for env in RATE_ENV.values()}
    client = redis.Redis.from_url(BENCH_REDIS)

    procs = Processes(log_dir, **no_limits)
    try:
        procs.worker("lead-processing", "bare", concurrency, "-I", "bench.bare")
        procs.wait_ready(["lead-processing@bare"])
        client.delete(COUNTER)
        started = time.monotonic()
        for _ in range(jobs):
            bare_noop.apply_async(queue="lead-processing")
        while int(client.get(COUNTER) or 0) < jobs:
            time.sleep(0.05)
        bare = jobs / (time.monotonic() - started)
    finally:
        procs.stop()

    procs = Processes(log_dir, **no_limits)
    try:
        procs.worker("lead-processing", "ledger", concurrency)
        procs.dispatcher("ledger")
        procs.wait_ready(["lead-processing@ledger"])
        Job.objects.all().delete()
        started = time.monotonic()
        with transaction.atomic():
            for _ in range(jobs):
                enqueue_probe("lead-processing")
        while Job.objects.filter(state="succeeded").count() < jobs:
            time.sleep(0.1)
        ours = jobs / (time.monotonic() - started)
    finally:
        procs.stop()
    return ours, bare


HEALTH_TASK = "bench.health"


def bench_health_queries(rows: int, rounds: int = 30) -> list[list[str]]:
    """Median, best and worst time of health_report(), the dashboard's data and /metrics over
    `rounds` calls each (with the machine's load average, as the figures depend on it), with `rows` finished jobs (one in 50 dead) spread over the last `rows` seconds, plus
    a few running and waiting, in the ledger."""
    import statistics

    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.test import RequestFactory

    from monitoring.dashboard import dashboard_payload
    from monitoring.health import compact_job_counts, health_report
    from monitoring.metrics import render

    queues = "ARRAY[" + ",".join(f"'{q}'" for q in QUEUES) + "]"
    with connection.cursor() as cur:
        started = time.monotonic()
        cur.execute(f"""
            INSERT INTO workers_job (id, queue, task, payload, state, attempts, max_attempts, next_attempt_at,
                                     dispatch_token, worker, last_error, created_at, updated_at, started_at,
                                     finished_at, lease_expires_at)
            SELECT gen_random_uuid(), ({queues})[1 + i %% 4], '{HEALTH_TASK}', '{{}}'::jsonb,
                   CASE WHEN i <= 40 THEN 'pending' WHEN i <= 60 THEN 'running'
                        WHEN i %% 50 = 0 THEN 'dead' ELSE 'succeeded' END,
                   1, 3, now() - i * interval '1 second', 1, 'bench', '', now() - i * interval '1 second',
                   now() - i * interval '1 second',
                   CASE WHEN i <= 40 THEN NULL ELSE now() - (i + 1) * interval '1 second' END,
                   CASE WHEN i <= 60 THEN NULL ELSE now() - i * interval '1 second' END,
                   CASE WHEN i > 40 AND i <= 60 THEN now() + interval '1 minute' END
            FROM generate_series(1, %s) AS i""", [rows])
        loaded = time.monotonic() - started
        cur.execute("VACUUM ANALYZE workers_job")  # as autovacuum leaves a ledger that has lived a while
    compact_job_counts()  # as the dispatcher leader does at each of its heartbeats
    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")  # the load's writes are flushed now, not while we measure
    log(f"{rows} ledger rows loaded in {loaded:.1f} s")
    request = RequestFactory().get("/admin/workers/data", HTTP_HOST="localhost")
    request.user = AnonymousUser()
    measured = {"health API (health_report)": health_report, "dashboard data": lambda: dashboard_payload(request),
                "/metrics": render}
    out = []
    try:
        for name, call in measured.items():
            for _ in range(3):  # warm: connections, plans, Redis scripts, caches
                call()
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
            out.append([name, f"{rows:,}", f"{statistics.median(times):.1f} ms", f"{min(times):.1f} ms",
                        f"{max(times):.1f} ms", "%.1f" % os.getloadavg()[0]])
    finally:
        with connection.cursor() as cur:
            cur.execute("DELETE FROM workers_job WHERE task = %s", [HEALTH_TASK])
        compact_job_counts()
    return out


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=2, help="rate-limit windows measured per phase (default 2)")
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs for the throughput phase")
    parser.add_argument("--skip-rates", action="store_true", help="skip the rate-limit phase (several minutes)")
    parser.add_argument("--health-rows", type=int, default=1_000_000,
                        help="finished jobs in the ledger while timing the health queries (default 1000000)")
    parser.add_argument("--health-only", action="store_true", help="run only the health-queries phase")
    args = parser.parse_args()

    prepare()
    log(f"health queries with {args.health_rows:,} ledger rows")
    health_rows = bench_health_queries(args.health_rows)
    if args.health_only:
        print(table(["query", "ledger rows", "median", "best", "worst", "load avg"], health_rows))
        return
    from django.conf import settings

    log_dir = Path(tempfile.mkdtemp(prefix="resilience-bench-"))
    log(f"bench database {BENCH_DB}, redis {BENCH_REDIS}, logs {log_dir}")
    rate_rows = [] if args.skip_rates else bench_rate_limits(log_dir, args.windows)
    log("crash recovery")
    recovery = bench_recovery(log_dir)
    log("idle RSS")
    rss = bench_idle_rss(log_dir)
    log(f"throughput: {args.jobs} no-op jobs, one worker -c 4, limits lifted")
    ours, bare = bench_throughput(log_dir, args.jobs, 4)

    print()
    if rate_rows:
        print("Global rate limits (starts from the limiter's log; achieved = period / mean time from start i to "
              "start i+limit; primary-killed figures from one period after the kill)")
        print(table(["queue", "limit", "most starts in any window", "achieved, both pools",
                     "achieved, primary killed"], rate_rows))
        print()
    print(table(["measure", "figure"], [
        [f"crash recovery (worker main process SIGKILLed, lease {settings.JOB_LEASE_SECONDS:g}s)", f"{recovery:.1f} s"],
        ["idle RSS, primary pool (4 workers + children + dispatcher)", f"{rss['primary']:.0f} MB"],
        ["idle RSS, backup pool", f"{rss['backup']:.0f} MB"],
        ["no-op throughput: ledger + dispatcher + worker", f"{ours:.0f} jobs/s"],
        ["no-op throughput: bare Celery, same worker", f"{bare:.0f} jobs/s"],
        ["ratio ledger / bare", f"{ours / bare:.2f}"],
    ]))
    print()
    print(table(["query", "ledger rows", "median", "best", "worst", "load avg"], health_rows))


if __name__ == "__main__":
    main()
