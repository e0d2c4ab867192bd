"""make bench: measured figures for the runtime, printed as a table.

Runs its own worker and dispatcher processes against a bench database and Redis db (never the
system started by `make up`), so it can kill them. Phases:
  1. rate limits at their configured values (50/20/100/10 per minute by default), all four queues
     with a backlog, both pools for --windows periods, then the primary pool SIGKILLed for as long;
     every start counted from the ledger (bench/limits.py), never from the limiter's own log;
  2. the whole system as deploy/supervisord.conf runs it (bench/footprint.py): RSS and PSS per pool
     and in all, idle and under a full backlog; crash recovery (worker main processes SIGKILLed
     mid-job, --kills times; a frozen worker, which only the lease recovers: how long its silent
     attempt held the job, from the ledger);
  3. two hosts: the pools under two supervisords with different host names, crash recovery and
     the rate limits;
  4. speed (bench/speed.py): throughput and p50 enqueue->start of the ledger path beside plain
     Celery (its defaults with acks_late), same Redis, same worker options, in turn, several rounds;
     in each round also the PostgreSQL job queues Procrastinate and PgQueuer (bench/peers.py, from a
     bench-only virtualenv), with the same no-op job; `--only peers` runs plain Celery and the peers;
  5. the health API, the dashboard's data and /metrics with a large ledger (--health-rows finished
     jobs, one million by default, loaded in one INSERT ... SELECT and removed after).
"""
from __future__ import annotations

import argparse
import os
import statistics
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
        from workers.processes import stop_process_groups

        stop_process_groups(self.procs.values(), timeout=20)
        self.procs.clear()


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




def start_both_pools(procs: Processes) -> list[str]:
    """Each pool's workers and dispatcher candidate as deploy/supervisord.conf starts them (per pool a
    prefork worker for lead-processing+delivery and a threads worker for site-generation+email-sending),
    without supervisord, so a pool can be killed whole. Returns the names of the started processes."""
    from bench.footprint import system_env, worker_commands

    env = system_env(lift_limits=False)
    names, nodes = [], []
    for pool in ("primary", "backup"):
        for program, args in worker_commands(pool, env):
            procs.start(program, args)
            names.append(program)
            nodes.append(args[args.index("-n") + 1].split(".", 1)[0])
        procs.dispatcher(pool)
        names.append(f"dispatcher-{pool}")
    procs.wait_ready(nodes)
    return names


def bench_rate_limits(log_dir: Path, windows: int) -> list:
    from django.conf import settings

    from bench.limits import database_now, limit_figures
    from workers.probe import enqueue_probe

    limits = {q: settings.QUEUE_RATE_LIMITS[q] for q in QUEUES}
    period = max(p for _, p in limits.values())
    procs = Processes(log_dir)
    try:
        started = start_both_pools(procs)
        t_start = database_now()
        for queue, (count, _) in limits.items():
            for _ in range(count * (2 * windows + 6)):  # a backlog that outlasts both phases
                enqueue_probe(queue)
        log(f"rate limits: both pools, {windows} window(s) of {period:g}s after the first")
        time.sleep(period * (windows + 1))
        t_kill = database_now().timestamp()
        for name in started:
            if name.endswith("-primary"):
                procs.kill_group(name)
        log(f"rate limits: primary pool killed; backup alone for {windows} window(s) after the first")
        time.sleep(period * (windows + 1))
        t_end = database_now().timestamp()
    finally:
        procs.stop()
    # Every start counts against the limit; "achieved" after the kill from one period on, for the
    # failover to settle.
    return [limit_figures(queue, limit, t_start, [(0.0, t_kill), (t_kill + limit[1], t_end)])
            for queue, limit in limits.items()]


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
    from monitoring.health import health_report
    from workers.retention import fold_job_counts
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
    fold_job_counts()  # as the dispatcher leader does at each of its heartbeats
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
        fold_job_counts()
        with connection.cursor() as cur:  # the later phases start as autovacuum would leave the tables
            cur.execute("VACUUM ANALYZE workers_job, workers_jobcount")
    return out


def print_footprint(system: dict, hosts: dict | None, settings) -> None:
    """The memory, recovery and two-hosts tables, each target beside its measured figure."""
    from bench import limits
    from bench.footprint import median

    idle, busy = system["idle"], system["backlog"]
    targets = {"primary": 200, "backup": 200, "whole system": 600}
    rows = []
    for part, figure in idle.items():
        loaded = busy[part]
        target = targets.get(part)
        ratio = loaded.pss_kb / figure.pss_kb if figure.pss_kb else 0
        verdict = "" if target is None else (
            "met" if figure.pss_mb <= target and ratio <= 2 else "NOT met")
        rows.append([part, str(figure.processes), f"{figure.rss_mb:.0f} MB", f"{figure.pss_mb:.0f} MB",
                     f"{loaded.processes}", f"{loaded.pss_mb:.0f} MB", f"{ratio:.2f}",
                     f"<= {target} MB, <= 2.00" if target else "", verdict])
    print("Memory (sum of /proc/<pid>/smaps_rollup over every process; under backlog: the highest PSS "
          "sampled each second with every queue full, limits lifted)")
    print(table(["part", "procs idle", "RSS idle", "PSS idle", "procs busy", "PSS busy", "busy/idle",
                 "target", ""], rows))
    print()
    rows = []
    for queue in settings.QUEUE_NAMES:
        most = [system["busiest"].get((queue, pool), 0) for pool in ("primary", "backup")]
        rows.append([queue, str(settings.QUEUE_CONCURRENCY[queue]), str(most[0]), str(most[1])])
    print("Jobs running at once under the backlog (ledger, sampled each second)")
    print(table(["queue", "concurrency per pool", "most, primary", "most, backup"], rows))
    print()
    lease = settings.JOB_LEASE_SECONDS
    kills = [t for _, t in system["kills"]]
    rows = [[f"crash recovery: worker main process SIGKILLed, median of {len(kills)} (lease {lease:g}s)", "<= 3 s",
             f"{median(kills):.2f} s", "met" if median(kills) <= 3 else "NOT met"],
            ["  each kill", "", ", ".join(f"{q} {t:.2f}" for q, t in system["kills"]), ""],
            ["crash recovery by the lease alone (worker frozen: a host gone), ledger", system["lease"].bound(lease),
             system["lease"].figure(), "met" if system["lease"].met(lease) else "NOT met"]]
    if hosts:
        host_kills = [t for _, t in hosts["kills"]]
        rows += [["two hosts: crash recovery, median", "<= 3 s", f"{median(host_kills):.2f} s",
                  "met" if median(host_kills) <= 3 else "NOT met"],
                 ["  each kill", "", ", ".join(f"{q} {t:.2f}" for q, t in hosts["kills"]), ""]]
    print(table(["measure", "target", "figure", ""], rows))
    print()
    if hosts:
        print("Two hosts (hostA runs primary, hostB backup; one supervisord each, same PostgreSQL and Redis): "
              "global rate limits")
        print(table([*limits.HEADERS, "achieved"], [f.row() for f in hosts["limits"]]))
        print()


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


SECTIONS = ("rates", "system", "hosts", "speed", "peers", "health")


def cpu_rows(speed) -> list[list[str]]:
    """CPU ms per job per process on both sides (median of the rounds), and the total."""
    from bench.speed import CPU_PARTS

    rows, totals = [], [0.0, 0.0]
    for part in CPU_PARTS:
        bare, ours = (statistics.median(side.cpu_ms.get(part) or [0.0]) for side in (speed.bare, speed.ledger))
        totals = [totals[0] + bare, totals[1] + ours]
        rows.append([part, f"{bare:.2f}", f"{ours:.2f}", f"{ours - bare:.2f}"])
    rows.append(["total", f"{totals[0]:.2f}", f"{totals[1]:.2f}", f"{totals[1] - totals[0]:.2f}"])
    return rows


def print_targets(system: dict | None, hosts: dict | None, speed, rate_rows: list, settings) -> None:
    """Every target of issue 12 beside its measured figure, the ratio to the target and met or not."""
    from bench import limits
    from bench.footprint import median
    from bench.speed import spread

    rows = []

    def row(target: str, bound: str, figure: str, ratio: str, met: bool | None) -> None:
        rows.append([target, bound, figure, ratio, "" if met is None else ("met" if met else "NOT met")])

    if system:
        idle, busy = system["idle"], system["backlog"]
        for part, cap in (("whole system", 600), ("primary", 200), ("backup", 200)):
            mb = idle[part].pss_mb
            row(f"1. memory idle, PSS: {part}", f"<= {cap} MB", f"{mb:.0f} MB", f"{mb / cap:.2f} of target",
                mb <= cap)
        for part in ("whole system", "primary", "backup"):
            ratio = busy[part].pss_kb / idle[part].pss_kb
            row(f"1. memory under full backlog: {part}", "<= 2 x idle", f"{busy[part].pss_mb:.0f} MB",
                f"{ratio:.2f} x idle", ratio <= 2)
        kills = [t for _, t in system["kills"]]
        row(f"2. crash recovery, main process SIGKILLed (median of {len(kills)})", "<= 3 s",
            f"{median(kills):.2f} s", f"{median(kills) / 3:.2f} of target", median(kills) <= 3)
        lease = settings.JOB_LEASE_SECONDS
        row("2. the lease path (worker frozen: a host gone), ledger", system["lease"].bound(lease),
            system["lease"].figure(), "", system["lease"].met(lease))
    if speed and speed.ledger.throughput:
        tr, lr = speed.throughput_ratios(), speed.latency_ratios()
        row(f"3. throughput, ledger / plain Celery ({len(tr)} round(s))", ">= 0.50",
            f"{spread(speed.ledger.throughput, '.0f')} / {spread(speed.bare.throughput, '.0f')} jobs/s",
            spread(tr, ".2f"), statistics.median(tr) >= 0.5)
        row("3. p50 enqueue->start, ledger / plain Celery", "<= 3.00",
            f"{spread(speed.ledger.p50_ms, '.1f')} / {spread(speed.bare.p50_ms, '.2f')} ms",
            spread(lr, ".2f"), statistics.median(lr) <= 3)
        if statistics.median(tr) < 0.5:
            total = {side: sum(statistics.median(v) for v in getattr(speed, side).cpu_ms.values())
                     for side in ("bare", "ledger")}
            worst = max(cpu_rows(speed)[:-1], key=lambda r: float(r[3]))
            row("   what holds 3 back: CPU per job, ledger / plain Celery", "",
                f"{total['ledger']:.2f} / {total['bare']:.2f} ms (most: {worst[0]}, +{worst[3]} ms; "
                "docs/benchmarks.md, Speed)", f"{total['ledger'] / total['bare']:.2f}", None)
    if hosts:
        host_kills = [t for _, t in hosts["kills"]]
        row("4. two hosts: crash recovery (median)", "<= 3 s", f"{median(host_kills):.2f} s",
            f"{median(host_kills) / 3:.2f} of target", median(host_kills) <= 3)
        row("4. two hosts: most starts in any window / limit (worst queue; ledger)", "<= 1.00",
            *limits.summary(hosts["limits"]))
    if rate_rows:
        row("   one host, deploy layout: most starts in any window / limit (ledger)", "<= 1.00",
            *limits.summary(rate_rows))
    if rows:
        print("Issue 12 targets (all measured in this run)")
        print(table(["target", "bound", "measured", "ratio", ""], rows))
    from bench.targets import issue22_lines

    lines = issue22_lines(speed, rate_rows, (system or {}).get("after"))
    if lines:
        print()
        print("Issue 22 targets (all measured in this run)")
        print(table(["target", "bound", "measured", "ratio", ""], [line.row() for line in lines]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (repeat for several); default: all of " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true",
                        help="smaller figures everywhere (1 window, 3 kills, 10 s backlog, 1 speed round, 100k "
                             "health rows): minutes, not a quarter of an hour; not for docs/benchmarks.md")
    parser.add_argument("--windows", type=int, default=2, help="rate-limit windows measured per phase (default 2)")
    parser.add_argument("--jobs", type=int, default=2000, help="no-op jobs per throughput run (default 2000)")
    parser.add_argument("--samples", type=int, default=200,
                        help="jobs run one at a time for the p50 enqueue->start (default 200)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="speed rounds, plain Celery then the ledger in each (default 3)")
    parser.add_argument("--no-peers", action="store_true",
                        help="the speed section without Procrastinate and PgQueuer (no bench venv needed)")
    parser.add_argument("--skip-rates", action="store_true", help="skip the rate-limit phase (several minutes)")
    parser.add_argument("--health-rows", type=int, default=1_000_000,
                        help="finished jobs in the ledger while timing the health queries (default 1000000)")
    parser.add_argument("--health-only", action="store_true", help="run only the health-queries phase")
    parser.add_argument("--kills", type=int, default=5, help="worker kills per crash-recovery median (default 5)")
    parser.add_argument("--backlog-seconds", type=float, default=30,
                        help="how long memory is sampled under a full backlog (default 30)")
    parser.add_argument("--skip-hosts", action="store_true", help="skip the two-hosts phase (about 3 minutes)")
    parser.add_argument("--host-windows", type=int, default=1, help="rate-limit windows measured on two hosts")
    args = parser.parse_args()
    if args.quick:
        args.windows, args.host_windows, args.kills, args.backlog_seconds = 1, 1, 3, 10
        args.rounds, args.jobs, args.samples, args.health_rows = 1, 1000, 100, 100_000
    sections = set(args.only or SECTIONS)
    if args.health_only:
        sections = {"health"}
    if args.skip_rates:
        sections.discard("rates")
    if args.skip_hosts:
        sections.discard("hosts")

    prepare()
    from django.conf import settings

    from bench import limits

    log_dir = Path(tempfile.mkdtemp(prefix="resilience-bench-"))
    log(f"bench database {BENCH_DB}, redis {BENCH_REDIS}, logs {log_dir}; sections {sorted(sections)}")
    health_rows = []
    if "health" in sections:
        log(f"health queries with {args.health_rows:,} ledger rows")
        health_rows = bench_health_queries(args.health_rows)
    rate_rows = bench_rate_limits(log_dir, args.windows) if "rates" in sections else []
    from bench import footprint

    system = hosts = speed = None
    if "system" in sections:
        log("the whole system under supervisord (deploy/supervisord.conf): memory, crash recovery")
        system = footprint.bench_system(args.kills, args.backlog_seconds, log)
    if "hosts" in sections:
        log("two hosts (hostA: primary, hostB: backup) on the same PostgreSQL and Redis")
        hosts = footprint.bench_two_hosts(args.kills, args.host_windows, log)
    if "speed" in sections or "peers" in sections:
        from bench.speed import bench_speed

        footprint.fresh_start()
        no_limits = {env: "0" for env in RATE_ENV.values()}
        speed = bench_speed(lambda: Processes(log_dir, **no_limits), BENCH_REDIS, args.jobs, args.samples,
                            args.rounds, log, ledger="speed" in sections,
                            peers="peers" in sections or not args.no_peers, bench_db=BENCH_DB)

    print()
    if rate_rows:
        print("Global rate limits, one host, both pools in the deploy layout (every start from the ledger, by the "
              "database's clock, counted in windows of the period less the record's lag spread: "
              "workers/ratelimit.py count_starts; achieved = period / mean time from start i to start i+limit; "
              "primary-killed figures from one period after the kill)")
        print(table([*limits.HEADERS, "achieved, both pools", "achieved, primary killed"],
                    [f.row() for f in rate_rows]))
        print()
    if system:
        print_footprint(system, hosts, settings)
        after = system["after"]
        print("Memory idle after the workload (the kills, the lease path, the backlog; every job finished, "
              f"then {footprint.AFTER_IDLE_SECONDS} s idle), PSS")
        print(table(["part", "procs", "RSS", "PSS"], [[part, str(f.processes), f"{f.rss_mb:.0f} MB",
                                                       f"{f.pss_mb:.0f} MB"] for part, f in after.items()]))
        print()
    elif hosts:
        print("Two hosts: global rate limits")
        print(table([*limits.HEADERS, "achieved"], [f.row() for f in hosts["limits"]]))
        print()
    if speed and speed.ledger.throughput:
        from bench.speed import spread

        print(f"Speed: {speed.jobs} no-op jobs drained, then {speed.samples} one at a time; prefork at Celery's "
              f"default concurrency ({speed.concurrency}), acks_late, limits lifted; median (range) of "
              f"{len(speed.bare.throughput)} round(s)")
        print(table(["measure", "plain Celery", "ledger", "ratio"], [
            ["throughput (jobs/s)", spread(speed.bare.throughput, ".0f"), spread(speed.ledger.throughput, ".0f"),
             spread(speed.throughput_ratios(), ".2f")],
            ["p50 enqueue->start (ms)", spread(speed.bare.p50_ms, ".2f"), spread(speed.ledger.p50_ms, ".2f"),
             spread(speed.latency_ratios(), ".2f")],
        ]))
        print()
        print(f"CPU per job while the {speed.jobs} jobs drain (ms; utime + stime from /proc, median of the rounds): "
              "on a machine whose cores are busy, what sets the throughput")
        print(table(["process", "plain Celery", "ledger", "ledger - plain"], cpu_rows(speed)))
        print()
    if speed:
        from bench import peer_jobs, targets

        if speed.peers:
            print(f"Peers: the same {speed.jobs} no-op jobs (one INCR) queued at once and drained, then "
                  f"{speed.samples} one at a time, in the same rounds, one side at a time; Procrastinate: one "
                  f"worker, concurrency {peer_jobs.PROCRASTINATE_CONCURRENCY}; PgQueuer: batch "
                  f"{peer_jobs.PGQUEUER_BATCH}, {peer_jobs.PGQUEUER_IN_FLIGHT} in flight; CPU: worker, "
                  "submitting call and PostgreSQL backends, per job, median of the rounds")
            print(table(targets.PEER_HEADERS, targets.peer_rows(speed)))
        else:
            print(f"Peers not measured: {speed.peers_skipped or 'not asked (--no-peers)'}")
        print()
    if health_rows:
        print(table(["query", "ledger rows", "median", "best", "worst", "load avg"], health_rows))
        print()
    print_targets(system, hosts, speed, rate_rows, settings)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
