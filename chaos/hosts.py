"""make chaos-hosts: the two pools as two real hosts, each in a Linux network namespace of its own, cut
off and frozen under a steady flow of leads (issue 22, item 4).

    .venv/bin/python -m chaos.hosts [--rate 2] [--cut-seconds 30] [--short] [--deadline-minutes 12]

Needs root and `ip netns` (iproute2); without them it prints one line saying what is blocked and exits 3.

Layout (everything it starts is its own: ports 56020-56024, var/chaos-hosts, namespaces rsh-hostA and
rsh-hostB):
- root namespace: a throwaway PostgreSQL cluster (127.0.0.1:56020), a redis-server that keeps nothing
  (127.0.0.1:56021), the loopback SMTP sink (127.0.0.1:56024) and chaos/relay.py, which forwards each
  host's end of its links to them;
- hostA (primary pool) and hostB (backup pool): a namespace each, with its own UTS namespace and host
  name (`unshare --uts`), its own supervisord, and two veth links to the root namespace: one that carries
  Redis (hostA 10.22.1.2 -> 10.22.1.1, hostB 10.22.3.2 -> 10.22.3.1), one that carries PostgreSQL and
  the SMTP sink (hostA 10.22.2.2 -> 10.22.2.1, hostB 10.22.4.2 -> 10.22.4.1).

A cut sets the root end of a link down: the host's packets on it vanish (no reset, no error: its
sockets see a silent partition, as behind a dead switch port) until the link is set up again.

Leads arrive at --rate a second (MOCK_MODE: Claude mocked, every email over SMTP to the sink) while:
host B is cut from Redis only, from PostgreSQL only, from both (--cut-seconds each, --gap-seconds
between), then host A is frozen whole (SIGSTOP to every process in its namespace) as long. --short: one
cut only (host B from both), about a minute of faults. When every lead and job is final it prints
PASS/FAIL lines: nothing lost (every lead's jobs final), nothing doubled (one site per qualified lead,
one email per address counted at the SMTP sink, not in the ledger), the rate limits exact (the most
starts in any window from the ledger's slot times), and for each cut the time until the jobs the cut
host held ran elsewhere. Exit 0 only when every check passes. Namespaces, links and processes are
removed on exit, also on a failure, Ctrl-C or the hard deadline.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "chaos-hosts"
PORTS = {"postgres": 56020, "redis": 56021, "smtp": 56024}
MARK = "RESILIENCE_CHAOS_HOSTS_RUN"
# The contract's counts per 10 s instead of per minute (as make chaos), delivery raised so that the
# flow's deliveries do not queue behind its limit for minutes after the leads stop.
SCALED_RATES = {"LEAD_PROCESSING_RATE": "50/10s", "SITE_GENERATION_RATE": "20/10s",
                "EMAIL_SENDING_RATE": "100/10s", "DELIVERY_RATE": "30/10s"}
CLEANUP_SECONDS = 90
LOCK = Path("/run/lock/resilience-chaos-hosts.lock")
UNFINISHED = ("pending", "dispatched", "running", "retry")

_t0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - _t0:5.0f}s] {message}", flush=True)


class Interrupted(Exception):
    pass


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# --- the two hosts ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    name: str  # hostA / hostB: the host name inside its UTS namespace and in the workers' node names
    pool: str  # the supervisord group it runs
    subnet: int  # 10.22.<subnet>.0/30 carries Redis, 10.22.<subnet + 1>.0/30 PostgreSQL and SMTP

    @property
    def netns(self) -> str:
        return f"rsh-{self.name}"

    def link(self, kind: str) -> tuple[str, str, str, str]:
        """(root end, host end, root address, host address) of its `redis` or `pg` link."""
        net = self.subnet + (kind == "pg")
        return f"rsh{self.name[-1]}-{kind}", f"{kind}0", f"10.22.{net}.1", f"10.22.{net}.2"

    def server(self, kind: str) -> str:
        """The address this host reaches Redis (`redis`) or PostgreSQL and SMTP (`pg`) at."""
        return self.link(kind)[2]


HOSTS = (Host("hostA", "primary", 1), Host("hostB", "backup", 3))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=20)
    if check and result.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def netns_blocked() -> str | None:
    """Why this machine cannot run make chaos-hosts (one line), or None when it can."""
    if os.geteuid() != 0:
        return "needs root (ip netns add, veth links)"
    if not shutil.which("ip") or not shutil.which("unshare"):
        return "needs iproute2's ip and util-linux's unshare"
    probe = f"rsh-probe-{os.getpid()}"
    try:
        result = ip("netns", "add", probe, check=False)
        if result.returncode:
            return f"ip netns add is not permitted: {result.stderr.strip()}"
        result = ip("link", "add", f"rshp{os.getpid() % 10000}", "type", "veth", "peer", "name", "p0",
                    "netns", probe, check=False)
        if result.returncode:
            return f"veth links are not permitted: {result.stderr.strip()}"
        result = subprocess.run(["ip", "netns", "exec", probe, "unshare", "--uts", "true"], check=False,
                                capture_output=True, text=True, timeout=20)
        if result.returncode:
            return f"unshare --uts inside a namespace failed: {result.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def netns_pids(host: Host) -> list[int]:
    out = ip("netns", "pids", host.netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def signal_host(host: Host, sig: int) -> int:
    """Send `sig` to every process in the host's namespace (SIGSTOP: the host frozen whole)."""
    pids = netns_pids(host)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return len(pids)


def remove_host(host: Host) -> None:
    """Its processes killed (thawed first, so none stays stopped), its namespace and links deleted."""
    if ip("netns", "list", check=False).stdout.split().count(host.netns) or Path(f"/run/netns/{host.netns}").exists():
        signal_host(host, signal.SIGCONT)
        signal_host(host, signal.SIGKILL)
        ip("netns", "del", host.netns, check=False)
    for kind in ("redis", "pg"):
        # Deleting the namespace deletes its veth ends and so their peers; a half-made link may remain.
        ip("link", "del", host.link(kind)[0], check=False)


def make_host(host: Host) -> None:
    ip("netns", "add", host.netns)
    ip("-n", host.netns, "link", "set", "lo", "up")
    for kind in ("redis", "pg"):
        outer, inner, outer_addr, inner_addr = host.link(kind)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", host.netns)
        ip("addr", "add", f"{outer_addr}/30", "dev", outer)
        ip("link", "set", outer, "up")
        ip("-n", host.netns, "addr", "add", f"{inner_addr}/30", "dev", inner)
        ip("-n", host.netns, "link", "set", inner, "up")


def set_link(host: Host, kind: str, up: bool) -> None:
    ip("link", "set", host.link(kind)[0], "up" if up else "down")


def start_relay(log_path: Path) -> subprocess.Popen:
    specs = []
    for host in HOSTS:
        specs.append(f"{host.server('redis')}:{PORTS['redis']}={PORTS['redis']}")
        specs += [f"{host.server('pg')}:{PORTS[k]}={PORTS[k]}" for k in ("postgres", "smtp")]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "chaos.relay", *specs], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, MARK: str(VAR)}, start_new_session=True)
    import socket

    for _ in range(100):
        try:
            socket.create_connection((HOSTS[0].server("redis"), PORTS["redis"]), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    raise RuntimeError(f"the relay did not start: see {log_path}")


def host_supervisor(host: Host, env: dict[str, str]):
    """deploy/supervisord.conf's group for this host, its supervisord started inside the host's
    network namespace under a UTS namespace of its own with the host's name."""
    from bench.footprint import Supervisor

    class NetnsSupervisor(Supervisor):
        def start(self, timeout: float = 90) -> None:
            full = {**os.environ, **self.env, "VAR_DIR": str(self.tmp)}
            supervisord = str(ROOT / ".venv" / "bin" / "supervisord")
            subprocess.run(["ip", "netns", "exec", host.netns, "unshare", "--uts", "sh", "-c",
                            'hostname "$1" && exec "$2" -c "$3"', "sh", host.name, supervisord, str(self.conf)],
                           env=full, check=True, timeout=60)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                states = self.states()
                if states and all(state == "RUNNING" for state in states.values()):
                    return
                time.sleep(1)
            raise RuntimeError(f"{host.name}'s programs did not all start: {self.states()} (logs in {self.tmp})")

    var = VAR / host.name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    return NetnsSupervisor(env, only=(host.pool,), host=host.name, tmp=var)


# --- the flow, the cuts and what they show ---------------------------------------------------------

@dataclass
class Flow:
    """Leads accepted at `rate` a second (leads.services.accept_leads, the webhook's path in) in a
    thread of its own, until stopped; a lead whose accept failed is tried again (nothing was stored)."""

    leads: list[tuple[str, dict]]
    rate: float
    job_ids: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    errors: int = 0
    stop_event: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from django.db import DatabaseError, connection

        from leads.services import accept_leads

        start = time.monotonic()
        for n, (kind, lead) in enumerate(self.leads):
            if self.stop_event.wait(max(0.0, start + n / self.rate - time.monotonic())):
                break
            while not self.stop_event.is_set():
                try:
                    (submission,) = accept_leads([lead], source="chaos-hosts")
                except DatabaseError:
                    self.errors += 1
                    connection.close()
                    time.sleep(0.5)
                    continue
                self.job_ids.append(str(submission.job_id))
                self.kinds[str(submission.job_id)] = kind
                break
        connection.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="flow", daemon=True)
        thread.start()
        return thread


@dataclass
class Cut:
    what: str
    host: Host
    started: float  # time.time()
    seconds: float = 0.0
    held: dict[str, str] = field(default_factory=dict)  # job id -> state, held by the cut host at the cut
    moved: dict[str, float] = field(default_factory=dict)  # job id -> seconds from the cut to its start elsewhere
    stayed: dict[str, float] = field(default_factory=dict)  # job id -> seconds until the cut host itself ended it
    other_started: float | None = None  # seconds from the cut to the first start on the other host
    worst_wait: tuple[float, str] | None = None  # the longest enqueue -> start of a job enqueued during the cut
    leader: str = "?"  # the host whose dispatcher led when the cut began

    def line(self) -> str:
        moved = sorted(self.moved.values())
        text = (f"{self.what} {self.seconds:.0f} s (dispatcher leader {self.leader}): {len(self.held)} jobs running on {self.host.name} at the cut; "
                f"{len(moved)} ran elsewhere")
        if moved:
            text += f" after {statistics.median(moved):.1f} s median, {moved[-1]:.1f} s at most"
        if self.stayed:
            text += (f"; {len(self.stayed)} ended on {self.host.name} itself (at most "
                     f"{max(self.stayed.values()):.1f} s after the cut)")
        left = set(self.held) - set(self.moved) - set(self.stayed)
        if left:
            text += f"; {len(left)} neither"
        if self.other_started is not None:
            text += f"; the other host started a job {self.other_started:.1f} s after the cut"
        if self.worst_wait is not None:
            text += (f"; of the jobs enqueued during it the longest wait for its start {self.worst_wait[0]:.1f} s "
                     f"({self.worst_wait[1]})")
        return text

    def measure_waits(self) -> None:
        """From the ledger after the run: the jobs enqueued during the cut, enqueue -> the start of the
        attempt that ran (a message a cut host had taken waits for the job to be given to the other)."""
        from datetime import UTC, datetime

        from workers.models import Job

        rows = Job.objects.filter(created_at__gte=datetime.fromtimestamp(self.started, UTC),
                                  created_at__lt=datetime.fromtimestamp(self.started + self.seconds, UTC),
                                  started_at__isnull=False).values_list("created_at", "started_at", "queue", "worker")
        waits = [((s - c).total_seconds(), f"{q} on {w.split('@')[-1]}") for c, s, q, w in rows]
        self.worst_wait = max(waits, default=None)


def leader() -> str:
    """The host whose dispatcher said last that it leads (its log: the leader's lock is in PostgreSQL)."""
    for host in HOSTS:
        try:
            lines = (VAR / host.name / "log" / f"dispatcher-{host.pool}.log").read_text().splitlines()
        except OSError:
            continue
        said = [line for line in lines if "now the leader" in line or "leadership lost" in line]
        if said and "now the leader" in said[-1]:
            return host.name
    return "none"


def on_host(worker: str, host: Host) -> bool:
    """Whether a node name (lead-processing+delivery@primary.hostA, its heartbeat's /queue after it,
    dispatcher@hostA) is one of the host's."""
    node = worker.split("/", 1)[0]
    return node.endswith((f".{host.name}", f"@{host.name}"))


def held_by(host: Host) -> dict[str, str]:
    from workers.models import Job

    return {str(j): s for j, s, w in Job.objects.filter(state="running").values_list("id", "state", "worker")
            if on_host(w, host)}


def follow(cut: Cut, until: float, other: Host) -> None:
    """Poll the ledger until `until` (monotonic) for where the held jobs went: started by the other
    host (its attempt's started_at, the database's clock, this machine's) or ended by the cut host."""
    from datetime import UTC, datetime

    from django.db import DatabaseError, connection

    from workers.models import Job

    since = datetime.fromtimestamp(cut.started, UTC)
    while time.monotonic() < until:
        try:
            if not cut.seconds:
                # While it lasts, whatever the cut host holds (claimed just before, or claimed since
                # from what it had taken off its queues) is its to give up.
                for job_id, state in held_by(cut.host).items():
                    cut.held.setdefault(job_id, state)
            if cut.other_started is None:
                first = (Job.objects.filter(started_at__gte=since, worker__endswith=other.name)
                         .order_by("started_at").values_list("started_at", flat=True).first())
                if first:
                    cut.other_started = first.timestamp() - cut.started
            open_ids = [j for j in cut.held if j not in cut.moved and j not in cut.stayed]
            for job_id, state, worker, started in Job.objects.filter(id__in=open_ids).values_list(
                    "id", "state", "worker", "started_at"):
                job_id = str(job_id)
                if on_host(worker, other) and started and started.timestamp() >= cut.started:
                    cut.moved[job_id] = started.timestamp() - cut.started
                elif on_host(worker, cut.host) and state not in UNFINISHED:
                    cut.stayed[job_id] = time.time() - cut.started
        except DatabaseError:
            connection.close()
        time.sleep(0.25)


def build_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "resilience.settings", "ENV_FILE": "", MARK: str(VAR),
        "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(40), "CLAY_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "MOCK_MODE": "true", "MOCK_MODE_SENDS_EMAIL": "true", "EMAIL_BACKEND": "emails.backends.SMTPBackend",
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(PORTS["smtp"]), "EMAIL_TIMEOUT": "10",
        "DEFAULT_FROM_EMAIL": "Agency <hello@chaos.test>", "PUBLIC_BASE_URL": "http://jobs.chaos.test",
        "LOG_LEVEL": "INFO", **SCALED_RATES,
    }
    for name in ("EMAIL_URL", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL",
                 "AI_DAILY_BUDGET_USD"):
        os.environ.pop(name, None)
    return env


def host_env(base: dict[str, str], host: Host) -> dict[str, str]:
    """The programs' environment on `host`: the servers at its links' root ends (the relay)."""
    pg, redis_ = host.server("pg"), host.server("redis")
    return {**base, "DATABASE_URL": base["DATABASE_URL"].replace("@127.0.0.1:", f"@{pg}:"),
            "REDIS_URL": base["REDIS_URL"].replace("//127.0.0.1:", f"//{redis_}:"), "EMAIL_HOST": pg}


def wait_heartbeats(hosts: tuple[Host, ...], seconds: float) -> None:
    """Until every worker of both hosts has reported (workers.models.WorkerHeartbeat)."""
    from workers.models import WorkerHeartbeat

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        names = set(WorkerHeartbeat.objects.values_list("name", flat=True))
        if all(sum(on_host(n, h) for n in names) >= 2 for h in hosts):
            return
        time.sleep(1)
    raise RuntimeError(f"workers of both hosts did not report within {seconds:g} s: {sorted(names)}")


def wait_final(job_ids: list[str], deadline: float) -> bool:
    from django.db import DatabaseError, connection

    from workers.models import Job

    calm, last = 0, 0.0
    while time.monotonic() < deadline:
        try:
            present = Job.objects.filter(id__in=job_ids).count()
            open_ = Job.objects.filter(state__in=UNFINISHED).count()
        except DatabaseError:
            connection.close()
            present, open_ = -1, -1
        calm = calm + 1 if present == len(job_ids) and open_ == 0 else 0
        if calm >= 2:
            return True
        if time.monotonic() - last > 20:
            log(f"waiting: {present}/{len(job_ids)} lead jobs in the ledger, {open_} jobs unfinished")
            last = time.monotonic()
        time.sleep(2)
    return False


def plan(short: bool) -> list[tuple[str, Host, tuple[str, ...]]]:
    """(what, host, links cut or () for a freeze)."""
    a, b = HOSTS
    if short:
        return [("hostB cut from Redis and PostgreSQL", b, ("redis", "pg"))]
    return [("hostB cut from Redis", b, ("redis",)), ("hostB cut from PostgreSQL", b, ("pg",)),
            ("hostB cut from both", b, ("redis", "pg")), ("hostA frozen (SIGSTOP)", a, ())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos-hosts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2.0, help="leads a second")
    parser.add_argument("--cut-seconds", type=float, default=30.0)
    parser.add_argument("--gap-seconds", type=float, default=20.0, help="between cuts, everything connected")
    parser.add_argument("--short", action="store_true", help="one cut only (host B from both): about 2 minutes")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--deadline-minutes", type=float, default=12.0)
    args = parser.parse_args(argv)

    blocked = netns_blocked()
    if blocked:
        print(f"make chaos-hosts: blocked: {blocked}", file=sys.stderr)
        return 3
    # The namespaces and addresses are the machine's, not a checkout's: one run at a time on it, or the
    # second's clearing of leftovers would take the first's hosts away.
    import fcntl

    lock = open(LOCK, "w")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"make chaos-hosts: another run holds {LOCK} on this machine", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    hard_deadline = _t0 + args.deadline_minutes * 60
    work_deadline = hard_deadline - CLEANUP_SECONDS
    steps = plan(args.short)
    print(f"make chaos-hosts: seed {seed}, {args.rate:g} leads/s (MOCK_MODE, email over SMTP to the sink); "
          f"hostA (primary) and hostB (backup) in network namespaces; "
          + "; ".join(f"{what} {args.cut_seconds:g} s" for what, _, _ in steps), flush=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "deploy"))
    from chaos import services
    from chaos.run import clear_earlier_run

    for host in HOSTS:
        remove_host(host)
    leftovers, busy = clear_earlier_run(VAR, PORTS, mark=MARK)
    redis_server = services.Redis(PORTS["redis"], VAR / "redis.log")
    if leftovers:
        log(f"killed {leftovers} process(es) left by an earlier run")
    if busy:
        print(f"make chaos-hosts: ports in use by another program: {', '.join(busy)}", file=sys.stderr)
        return 2

    VAR.mkdir(parents=True, exist_ok=True)
    postgres = services.Postgres(VAR / "postgres", PORTS["postgres"])
    env = build_env(postgres.url, redis_server.url)
    os.environ.update(env)
    svs: list = []
    sink = relay = flow = None
    cuts: list[Cut] = []
    checks: list = []
    outcome: list[str] = []
    try:
        log("starting PostgreSQL (var/chaos-hosts/postgres), redis-server, the SMTP sink; the namespaces and relay")
        postgres.start()
        postgres.create_database()
        redis_server.start()
        import django

        django.setup()
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)
        from django.conf import settings
        from django.core.management import call_command

        from bench.footprint import system_env
        from chaos import checks as chaos_checks
        from chaos.run import decide_unknown
        from fakes.smtp import SmtpSink
        from leads.fake import make_fake_leads_with_kinds

        call_command("migrate", verbosity=0)
        sink = SmtpSink(port=PORTS["smtp"]).start()
        for host in HOSTS:
            make_host(host)
        relay = start_relay(VAR / "relay.log")
        programs_env = {**system_env(lift_limits=False), **env}
        for host in HOSTS:
            sv = host_supervisor(host, host_env(programs_env, host))
            svs.append(sv)
            log(f"starting {host.name}'s supervisord ({host.pool}) in namespace {host.netns}")
            sv.start()
        wait_heartbeats(HOSTS, 60)
        log("both hosts' workers report")

        total_seconds = 10 + len(steps) * (args.cut_seconds + args.gap_seconds)
        flow = Flow(make_fake_leads_with_kinds(int(total_seconds * args.rate) + 1, rng=random.Random(seed)), args.rate)
        flow_started = time.monotonic()
        flow.start()
        log(f"flow: {len(flow.leads)} leads at {args.rate:g}/s over {total_seconds:.0f} s")
        time.sleep(10)
        for what, host, links in steps:
            if time.monotonic() > work_deadline:
                raise TimeoutError("the deadline passed during the cuts")
            other = next(h for h in HOSTS if h is not host)
            cut = Cut(what, host, time.time(), leader=leader())
            cut.held = held_by(host)
            t = time.monotonic()
            if links:
                for kind in links:
                    set_link(host, kind, up=False)
            else:
                signal_host(host, signal.SIGSTOP)
            log(f"{what}: {len(cut.held)} jobs running there")
            cuts.append(cut)
            follower = threading.Thread(target=follow, args=(cut, t + args.cut_seconds + args.gap_seconds, other),
                                        daemon=True)
            follower.start()
            try:
                time.sleep(args.cut_seconds)
            finally:
                if links:
                    for kind in links:
                        set_link(host, kind, up=True)
                else:
                    signal_host(host, signal.SIGCONT)
                cut.seconds = time.monotonic() - t
            log(f"{what}: over after {cut.seconds:.1f} s; {len(cut.moved)} of its jobs ran elsewhere so far")
            follower.join()
        flow.stop_event.set()
        log(f"flow stopped after {time.monotonic() - flow_started:.0f} s: {len(flow.job_ids)} leads accepted "
            f"({flow.errors} accepts retried); waiting until every lead and job is final")
        if not wait_final(flow.job_ids, work_deadline):
            outcome.append("not final by the deadline")
        marked, resent = decide_unknown(sink)
        if marked or resent:
            log(f"emails left unknown, decided at the sink by Message-ID: {marked} marked sent, {resent} sent again")
            if resent and not wait_final(flow.job_ids, work_deadline):
                outcome.append("resent emails not final by the deadline")
        time.sleep(3)
        for cut in cuts:
            cut.measure_waits()
        invalid = {j for j, k in flow.kinds.items() if k == "invalid"}
        checks = [chaos_checks.leads_final(flow.job_ids), chaos_checks.jobs_final(),
                  chaos_checks.sites_and_emails(chaos_checks.recipients(list(sink.messages))),
                  chaos_checks.dead_letters(invalid), chaos_checks.messages_settled(),
                  chaos_checks.rate_limits({q: settings.QUEUE_RATE_LIMITS[q] for q in settings.QUEUE_NAMES})]
        checks.append(moved_check(cuts))
    except Interrupted as exc:
        outcome.append(f"interrupted ({exc})")
    except Exception as exc:  # noqa: BLE001 - reported as a FAIL line, then everything is stopped
        outcome.append(f"{type(exc).__name__}: {exc}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if flow:
            flow.stop_event.set()
        cleanup(svs, sink, relay, redis_server, postgres)

    duration = time.monotonic() - _t0
    print()
    print(f"make chaos-hosts, seed {seed}: {duration:.0f} s; "
          f"{len(flow.job_ids) if flow else 0} leads at {args.rate:g}/s")
    for cut in cuts:
        print(f"cut   {cut.line()}")
    for check in checks:
        print(check.line())
    for problem in outcome:
        print(f"FAIL  run: {problem}")
    ok = bool(checks) and all(c.ok for c in checks) and not outcome
    print(f"make chaos-hosts: {'PASS' if ok else 'FAIL'} (logs in {VAR})")
    return 0 if ok else 1


def moved_check(cuts: list[Cut]):
    """Every job a cut host held ended: run elsewhere, or finished by that host once back."""
    from chaos.checks import Check

    lost = {c.what: len(set(c.held) - set(c.moved) - set(c.stayed)) for c in cuts}
    return Check("each cut host's running jobs ran elsewhere or ended there", not any(lost.values()),
                 "; ".join(f"{what}: {n} neither" for what, n in lost.items()))


def cleanup(svs: list, sink, relay, redis_server, postgres) -> None:
    """Stop everything the run started, whatever state it is in; each step bounded."""
    for host in HOSTS:
        signal_host(host, signal.SIGCONT)  # a frozen host cannot shut down
    for sv in svs:
        try:
            sv.stop()
        except Exception as exc:  # noqa: BLE001
            log(f"supervisord did not stop cleanly: {exc}")
    for host in HOSTS:
        remove_host(host)
    if relay is not None and relay.poll() is None:
        relay.kill()
        relay.wait()
    if sink is not None:
        try:
            sink.stop()
        except Exception as exc:  # noqa: BLE001 - the rest must still be stopped
            log(f"the SMTP sink did not stop: {exc}")
    redis_server.stop()
    try:
        postgres.remove()
    except Exception as exc:  # noqa: BLE001
        log(f"PostgreSQL cluster not removed: {exc}")
    kill_marked(str(VAR), spare_postgres=True)


def kill_marked(mark_value: str, *, spare_postgres: bool = False) -> int:
    from chaos import run

    return run.kill_marked(mark_value, spare_postgres=spare_postgres, mark=MARK)

if __name__ == "__main__":
    sys.exit(main())
