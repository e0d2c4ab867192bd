"""make bench, the deployed system's sections: memory (RSS and PSS), crash recovery, two hosts.

These run deploy/supervisord.conf itself (a copy whose var/ paths point into a temporary directory,
so a `make up` system is never touched), on the bench database and Redis db, with free ports for
the web app and Flower: what is measured is what `make up` starts.

Memory is summed over every process of a part from /proc/<pid>/smaps_rollup. PSS (proportional set
size) shares each page among the processes that map it, so the figures of the parts add up to the
whole; RSS counts a shared page in every process and overstates a forked pool.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fakes.loopback import free_port
from workers.processes import process_tree as descendants, rss_and_pss_kib

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "supervisord.conf"
sys.path.insert(0, str(ROOT / "deploy"))
from workers_helper import parse_config  # noqa: E402 - how make workers-* reads the config

POOLS = ("primary", "backup")


# --- memory ------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """pid and every descendant."""
    return descendants(pid)


def rollup_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) when it exited meanwhile."""
    return rss_and_pss_kib(pid)


@dataclass
class Footprint:
    processes: int = 0
    rss_kb: int = 0
    pss_kb: int = 0

    @classmethod
    def of(cls, pids: list[int]) -> "Footprint":
        every = sorted({p for pid in pids for p in process_tree(pid)})
        sums = [rollup_kb(p) for p in every]
        return cls(len(every), sum(r for r, _ in sums), sum(p for _, p in sums))

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024

    @property
    def pss_mb(self) -> float:
        return self.pss_kb / 1024


# --- a supervisord of our own --------------------------------------------------------------------

@dataclass
class Supervisor:
    """deploy/supervisord.conf started by hand in a temporary directory.

    only: the groups/programs to keep (None: all); host: the name the workers' %h stands for (a
    second simulated host on this machine)."""

    env: dict[str, str]
    only: tuple[str, ...] | None = None
    host: str | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="resilience-bench-sv-")))

    def __post_init__(self) -> None:
        (self.tmp / "log").mkdir(exist_ok=True)
        text = CONF.read_text()
        if self.host:
            text = text.replace("%%h", self.host)
        if self.only is not None:
            text = _keep_sections(text, self.only)
        self.conf = self.tmp / "supervisord.conf"
        text = (text.replace("%(here)s/supervisord.conf", str(self.conf))
                .replace("%(here)s/../var", str(self.tmp)).replace("%(here)s", str(ROOT / "deploy")))
        self.conf.write_text(text)
        self.groups, self.workers = parse_config(text)

    def ctl(self, *args: str) -> str:
        return subprocess.run([str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=60).stdout

    def start(self, timeout: float = 90) -> None:
        env = {**os.environ, **self.env, "VAR_DIR": str(self.tmp)}
        subprocess.run([str(ROOT / ".venv" / "bin" / "supervisord"), "-c", str(self.conf)], env=env, check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states()
            if states and all(state == "RUNNING" for state in states.values()):
                return
            time.sleep(1)
        raise SystemExit(f"supervisord programs did not all start: {self.states()} (logs in {self.tmp})")

    def states(self) -> dict[str, str]:
        out = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
        return out

    def pid(self, program: str) -> int:
        """Main pid of a program (group:name or name)."""
        name = next((n for n in self.states() if n == program or n.endswith(":" + program)), program)
        out = self.ctl("pid", name).strip()
        return int(out) if out.isdigit() else 0

    def supervisord_pid(self) -> int:
        return int((self.tmp / "supervisord.pid").read_text())

    def pool_pids(self, pool: str) -> list[int]:
        return [pid for pid in (self.pid(program) for program in self.groups.get(pool, [])) if pid]

    def stop(self) -> None:
        try:
            pid = self.supervisord_pid()
        except (OSError, ValueError):
            return
        self.ctl("shutdown")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def _keep_sections(text: str, only: tuple[str, ...]) -> str:
    """The config with only the given groups (and their programs), the event listener and the
    supervisord sections: one simulated host's share of the system."""
    import configparser

    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    keep_programs = {p.strip() for g in only for p in parser.get(f"group:{g}", "programs").split(",")}
    out, keep = [], True
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            name = line.strip()[1:-1]
            kind, _, rest = name.partition(":")
            keep = (kind in ("unix_http_server", "supervisord", "rpcinterface", "supervisorctl", "eventlistener")
                    or (kind == "group" and rest in only) or (kind == "program" and rest in keep_programs))
        if keep:
            out.append(line)
    return "".join(out)


def worker_commands(pool: str, env: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(program, argv) of each Celery worker of `pool` as deploy/supervisord.conf starts it, its
    %(ENV_...)s filled from `env`: for phases that run the deployed workers without supervisord."""
    import configparser
    import re
    import shlex

    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string(CONF.read_text())
    out = []
    for program in parser.get(f"group:{pool}", "programs").split(","):
        command = parser.get(f"program:{program.strip()}", "command")
        command = re.sub(r"%\(ENV_(\w+)\)s", lambda m: env[m.group(1)], command)
        command = command.replace("%(here)s", str(ROOT / "deploy")).replace("%%", "%")
        args = shlex.split(command)
        if "worker" in args:
            out.append((program.strip(), args))
    return out


# --- the measurements ----------------------------------------------------------------------------

def memory_rows(sv: Supervisor) -> dict[str, Footprint]:
    parts = {pool: Footprint.of(sv.pool_pids(pool)) for pool in POOLS}
    parts["web, Flower, listener, supervisord"] = _rest(sv)
    parts["whole system"] = Footprint.of([sv.supervisord_pid()])
    return parts


def _rest(sv: Supervisor) -> Footprint:
    pools = {p for pool in POOLS for pid in sv.pool_pids(pool) for p in process_tree(pid)}
    rest = [p for p in process_tree(sv.supervisord_pid()) if p not in pools]
    sums = [rollup_kb(p) for p in rest]
    return Footprint(len(rest), sum(r for r, _ in sums), sum(p for _, p in sums))


def backlog_peak(sv: Supervisor, seconds: float, per_queue: dict[str, int],
                 sleep: float) -> tuple[dict[str, Footprint], dict[tuple[str, str], int]]:
    """Enqueue a backlog on every queue (limits lifted by the caller's env), then sample the memory
    and the running jobs every second for `seconds`: the highest PSS seen per part, and the most
    jobs seen running at once per (queue, pool)."""
    from django.db import transaction

    from workers.probe import enqueue_probe

    with transaction.atomic():
        for queue, count in per_queue.items():
            for _ in range(count):
                enqueue_probe(queue, sleep=sleep)
    peak: dict[str, Footprint] = {}
    busiest: dict[tuple[str, str], int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, figure in memory_rows(sv).items():
            if name not in peak or figure.pss_kb > peak[name].pss_kb:
                peak[name] = figure
        for queue, by_worker in running_counts().items():
            for worker, n in by_worker.items():
                key = (queue, worker.split("@", 1)[-1].split(".", 1)[0])
                busiest[key] = max(busiest.get(key, 0), n)
        time.sleep(1)
    return peak, busiest


def running_counts() -> dict[str, dict[str, int]]:
    """queue -> worker -> running jobs now."""
    from django.db.models import Count

    from workers.models import Job

    out: dict[str, dict[str, int]] = {}
    for row in Job.objects.filter(state="running").values("queue", "worker").annotate(n=Count("id")):
        out.setdefault(row["queue"], {})[row["worker"]] = row["n"]
    return out


def program_of(sv: Supervisor, node: str) -> str:
    for worker in sv.workers:
        if worker.node_name(node.split("@", 1)[1].split(".", 1)[1]) == node:
            return f"{worker.pool}:{worker.program}"
    raise LookupError(node)


@dataclass(frozen=True)
class Recovery:
    seconds: float  # from the kill or freeze until the job's probe started again; inf: it never did
    job_id: str


def kill_and_time(svs: list[Supervisor], queue: str, how: str, timeout: float = 120) -> Recovery:
    """One job on `queue` runs; its worker's main process gets SIGKILL (how="kill") or its whole
    process group is frozen with SIGSTOP (how="freeze": a host that vanished, which nothing local
    sees); how long until the job runs again (its probe starts a second time)."""
    from workers.models import Job
    from workers.probe import enqueue_probe, probe_starts

    job = enqueue_probe(queue, sleep=120)
    deadline = time.monotonic() + 60
    while probe_starts(str(job.id)) < 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"recovery probe {job.id} never started")
        time.sleep(0.05)
    job.refresh_from_db()
    sv = next(s for s in svs if any(w.node_name(job.worker.split("@", 1)[1].split(".", 1)[1]) == job.worker
                                     for w in s.workers))
    program = program_of(sv, job.worker)
    pid = sv.pid(program)
    Job.objects.filter(pk=job.pk).update(payload={"sleep": 0, "fail": ""})  # the rerun finishes at once
    if how == "freeze":
        os.killpg(os.getpgid(pid), signal.SIGSTOP)
    else:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while probe_starts(str(job.id)) < 2 and time.monotonic() - killed < timeout:
        time.sleep(0.02)
    took = time.monotonic() - killed if probe_starts(str(job.id)) >= 2 else float("inf")
    if how == "freeze":
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the host "comes back": supervisord starts it again
    # Wait until supervisord has the program running again (it must stay up startsecs, 10 s).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sv.states().get(program) != "RUNNING":
        time.sleep(0.5)
    return Recovery(took, str(job.id))


# The lease path's target (issue 22, item 3): a vanished host's jobs run again within 5 s, and not by a
# lease that lets go early. From the ledger: the frozen attempt kept its job at least its lease (from its
# claim, where the lease began, to the next attempt's claim), was taken back by the reaper and ran on
# another worker within VANISHED_HOST_BOUND_SECONDS of that claim.
VANISHED_HOST_BOUND_SECONDS = 5.0


@dataclass(frozen=True)
class LeasePath:
    """A frozen worker's job as the ledger records it: how long its silent attempt kept it."""

    held: float  # from the frozen attempt's claim to the next attempt's claim (database clock); inf: none
    reaped_by_lease: bool  # the frozen attempt's failure row says its lease expired
    elsewhere: bool  # the next attempt ran on another worker
    seconds: float  # the bench's own clock: from the freeze until the probe started again

    @classmethod
    def of(cls, recovery: Recovery) -> "LeasePath":
        """Read from the ledger: the frozen attempt is the job's first failure row (the reaper writes
        it), the job's current attempt is the one that ran again. The probe's queue runs without a
        limit here, so each started_at is its attempt's claim, where its lease began."""
        from workers.models import Job, JobFailure

        job = Job.objects.get(pk=recovery.job_id)
        lost = JobFailure.objects.filter(job_id=recovery.job_id).order_by("attempt").first()
        if lost is None or lost.started_at is None or job.attempts < 2 or recovery.seconds == float("inf"):
            return cls(float("inf"), False, False, recovery.seconds)
        return cls((job.started_at - lost.started_at).total_seconds(),
                   lost.error.startswith("WorkerLost: lease expired"), job.worker != lost.worker, recovery.seconds)

    def bound(self, lease: float) -> str:
        return f"lease {lease:g} s <= held <= {VANISHED_HOST_BOUND_SECONDS:g} s, reaped, run elsewhere"

    def met(self, lease: float) -> bool:
        return (lease <= self.held <= VANISHED_HOST_BOUND_SECONDS and self.reaped_by_lease and self.elsewhere)

    def figure(self) -> str:
        how = ", ".join(what for what, yes in (("reaped by the lease", self.reaped_by_lease),
                                                ("run on another worker", self.elsewhere)) if yes) or "not recovered"
        return f"held {self.held:.2f} s, {how}; probe again {self.seconds:.2f} s after the freeze"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- the sections of make bench ----------------------------------------------------------------

RATE_ENV = {"lead-processing": "LEAD_PROCESSING_RATE", "site-generation": "SITE_GENERATION_RATE",
            "email-sending": "EMAIL_SENDING_RATE", "delivery": "DELIVERY_RATE"}
# One kill per queue in turn: both kinds of worker (prefork, threads) are killed.
KILL_QUEUES = ("lead-processing", "email-sending", "delivery", "site-generation")


def system_env(*, lift_limits: bool) -> dict[str, str]:
    """What deploy/common.sh exports for supervisord.conf's %(ENV_...)s, from the settings."""
    from django.conf import settings

    conc = settings.QUEUE_CONCURRENCY
    env = {
        "LEAD_PROCESSING_CONCURRENCY": str(conc["lead-processing"]), "DELIVERY_CONCURRENCY": str(conc["delivery"]),
        "SITE_GENERATION_CONCURRENCY": str(conc["site-generation"]),
        "EMAIL_SENDING_CONCURRENCY": str(conc["email-sending"]),
        "LOCAL_QUEUES_CONCURRENCY": str(conc["lead-processing"] + conc["delivery"]),
        "NETWORK_QUEUES_CONCURRENCY": str(conc["site-generation"] + conc["email-sending"]),
        "WORKER_MAX_MEMORY_PER_CHILD_KB": os.environ.get("WORKER_MAX_MEMORY_PER_CHILD_KB", "1048576"),
        "WORKER_STOP_WAIT_SECONDS": str(settings.CELERY_TASK_TIME_LIMIT + 30),
        "WEB_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
        "FLOWER_BASIC_AUTH": "bench:" + "b" * 24, "LOG_LEVEL": "INFO",
    }
    if lift_limits:
        env.update({name: "0" for name in RATE_ENV.values()})
    return env


def fresh_start() -> None:
    """An empty ledger and Redis db: what an earlier phase left waiting would make an idle system busy."""
    import redis
    from django.conf import settings

    from workers.models import Job

    Job.objects.all().delete()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def kill_plan(kills: int) -> list[str]:
    return [KILL_QUEUES[i % len(KILL_QUEUES)] for i in range(kills)]


def bench_system(kills: int, backlog_seconds: float, log) -> dict:
    """The whole system as make up starts it: idle memory, crash recovery (supervisord events; the
    lease path), memory and concurrency under a full backlog on all four queues."""
    from django.conf import settings

    fresh_start()
    sv = Supervisor(system_env(lift_limits=True))
    out: dict = {}
    try:
        sv.start()
        time.sleep(15)  # heartbeats written, Flower connected, the pools' first child each
        out["idle"] = memory_rows(sv)
        log(f"system idle: {out['idle']['whole system'].pss_mb:.0f} MB PSS; {kills} worker kills")
        out["kills"] = [(queue, kill_and_time([sv], queue, "kill").seconds) for queue in kill_plan(kills)]
        log("recovery by the lease alone (a frozen worker: nothing local sees it die)")
        out["lease"] = LeasePath.of(kill_and_time([sv], "lead-processing", "freeze",
                                                  timeout=settings.JOB_LEASE_SECONDS * 3 + 30))
        per_queue = {q: c * len(POOLS) * 4 for q, c in settings.QUEUE_CONCURRENCY.items()}
        log(f"full backlog on every queue for {backlog_seconds:g}s: {per_queue}")
        out["backlog"], out["busiest"] = backlog_peak(sv, backlog_seconds, per_queue, sleep=5)
        out["after"] = idle_after_workload(sv, AFTER_IDLE_SECONDS, log)
    finally:
        sv.stop()
    out["logs"] = sv.tmp
    return out


AFTER_IDLE_SECONDS = 20


def idle_after_workload(sv: Supervisor, idle_seconds: float, log, timeout: float = 180) -> dict[str, Footprint]:
    """The memory once the workload is over (the kills, the lease path, the backlog): every job
    finished, then `idle_seconds` of nothing, as an operator would measure it between two bursts;
    what the pools grew to under load and did not give back shows here and not in the idle figure
    taken before the first job."""
    from workers.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(state__in=[*Job.WAITING_STATES, *Job.IN_FLIGHT_STATES]).exists():
        if time.monotonic() > deadline:
            log(f"memory after the workload: jobs still waiting after {timeout:g}s; measured anyway")
            break
        time.sleep(1)
    time.sleep(idle_seconds)
    rows = memory_rows(sv)
    log(f"system idle after the workload ({idle_seconds:g}s): {rows['whole system'].pss_mb:.0f} MB PSS")
    return rows


def bench_two_hosts(kills: int, windows: int, log) -> dict:
    """The two pools as two hosts (hostA runs primary, hostB backup, each with its own supervisord
    and event listener) on the same PostgreSQL and Redis: crash recovery across hosts, then the
    global rate limits at their configured values with a backlog on every queue."""
    from django.conf import settings

    from bench.limits import database_now, limit_figures
    from workers.probe import enqueue_probe

    fresh_start()
    t_start = database_now()  # the kills' probes are starts of limited queues too: they count
    env = system_env(lift_limits=False)
    hosts = [Supervisor(env, only=("primary",), host="hostA"), Supervisor(env, only=("backup",), host="hostB")]
    out: dict = {}
    try:
        for sv in hosts:
            sv.start()
        out["kills"] = [(queue, kill_and_time(hosts, queue, "kill").seconds) for queue in kill_plan(kills)]
        limits = {q: settings.QUEUE_RATE_LIMITS[q] for q in settings.QUEUE_NAMES}
        period = max(p for _, p in limits.values())
        t_backlog = database_now().timestamp()
        for queue, (count, _) in limits.items():
            for _ in range(count * (windows + 3)):
                enqueue_probe(queue)
        log(f"two hosts: rate limits for {windows} window(s) of {period:g}s after the first")
        time.sleep(period * (windows + 1))
        t_end = database_now().timestamp()
    finally:
        for sv in hosts:
            sv.stop()
    out["limits"] = [limit_figures(queue, limit, t_start, [(t_backlog, t_end)]) for queue, limit in limits.items()]
    return out
