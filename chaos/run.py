"""make chaos: the whole pipeline under fire, then the checks of issue 13.

    .venv/bin/python -m chaos.run [--leads 1000] [--seed N] [--deadline-minutes 20]

Starts everything it needs on its own ports (56010-56015) and in var/chaos: a throwaway PostgreSQL
cluster (56010), a redis-server that keeps nothing (56011), the web app (56012), Flower (56013), the
loopback SMTP sink (56014), the fake Anthropic API (56015: fakes/anthropic.py's process
mode, a seeded mix of valid, slow, overloaded, rate-limited and malformed answers, each in its journal
var/chaos/fake-anthropic.jsonl before it is written), and deploy/supervisord.conf (both pools, both
dispatchers, the event listener, web under hypercorn, Flower) with MOCK_MODE=false: the real SDK calls
the fake with a fake key, and every email goes over SMTP to the sink. A daily budget
(AI_DAILY_BUDGET_USD, in the programs' ENV_FILE var/chaos/budget.env) is set so the fake's answers
reach it mid-run.

Then posts the leads through the webhook while a worker process is SIGKILLed every 15 s, one pool gets
a rolling restart, Redis restarts empty and PostgreSQL is away for 20 s; once the budget pauses site
generation it is held 15 s, raised in the file and read by a restart of the site-generation workers and
the dispatchers, pool by pool (supervisorctl restart: a warm stop, no celery inspect). When every
lead and job is final it decides the emails left `unknown` by a kill as a person would (docs/guarantees.md,
Exactly one send), and prints one PASS/FAIL line per check (chaos/checks.py; the AI spend counted at the fake's
journal). Exit 0 only when every check passes. The rate limits are scaled to a 10 s period (the same
count per period) so the run takes about 10 minutes.
Everything it started is stopped, also on a failure, Ctrl-C or the hard deadline; a make up system
and other runs on this machine are left alone.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path

from workers.processes import pids_with_environment
from chaos.budget import BUDGET_SHARE, HOLD_SECONDS, RAISED_FACTOR, BudgetPhase, budget_for, write_budget

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "chaos"
PORTS = {"postgres": 56010, "redis": 56011, "web": 56012, "flower": 56013, "smtp": 56014, "anthropic": 56015}
# The contract's limits (50/20/100/10 per minute), the same counts per 10 s: six times the rate.
SCALED_RATES = {"LEAD_PROCESSING_RATE": "50/10s", "SITE_GENERATION_RATE": "20/10s",
                "EMAIL_SENDING_RATE": "100/10s", "DELIVERY_RATE": "10/10s"}
ANTHROPIC_MODEL = "claude-3-haiku-20240307"
MARK = "RESILIENCE_CHAOS_RUN"  # in the environment of every process the run starts: how leftovers are found
BATCH = 20
POST_SECONDS = 240  # the leads arrive over this long, while the faults happen
CLEANUP_SECONDS = 150  # kept from the hard deadline for stopping everything

_t0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - _t0:5.0f}s] {message}", flush=True)


class Interrupted(Exception):
    pass


def _interrupt(signum, frame):  # noqa: ARG001
    raise Interrupted(signal.Signals(signum).name)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers bind: the last run's connections in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def marked_pids(mark_value: str) -> list[int]:
    """Processes whose environment carries this run's mark (what the run started, and their children)."""
    return pids_with_environment(MARK, mark_value, besides=os.getpid())


def kill_marked(mark_value: str, *, spare_postgres: bool = False, mark: str = MARK) -> int:
    """SIGKILL the processes marked `mark` (a run's, and their children); a cluster's are spared when
    pg_ctl is to stop it in order."""
    from chaos.services import cmdline

    pids = [pid for pid in pids_with_environment(mark, mark_value, besides=os.getpid())
            if not (spare_postgres and cmdline(pid).startswith("postgres"))]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def clear_earlier_run(var: Path, ports: dict[str, int], *, mark: str = MARK) -> tuple[int, list[str]]:
    """Stop what an earlier run left when it was itself killed: its processes, its redis-server, its
    cluster. Returns how many processes were killed and the ports another program still holds."""
    from chaos import services

    leftovers = kill_marked(str(var), spare_postgres=True, mark=mark)
    leftovers += services.Redis(ports["redis"], var / "redis.log").stop_leftover()
    if (var / "postgres").exists():
        try:
            services.Postgres(var / "postgres", ports["postgres"]).remove()
        except RuntimeError:
            leftovers += kill_marked(str(var), mark=mark)
            shutil.rmtree(var / "postgres", ignore_errors=True)
    if leftovers:
        time.sleep(1)
    return leftovers, [f"{name} {port}" for name, port in ports.items() if not port_free(port)]


def build_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "resilience.settings", "ENV_FILE": "", MARK: str(VAR),
        "DATABASE_URL": postgres_url, "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(40), "CLAY_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "FLOWER_BASIC_AUTH": "chaos:" + secrets.token_urlsafe(18),
        # The real SDK against the fake API on loopback, with a key that is only a fake's.
        "MOCK_MODE": "false", "ANTHROPIC_API_KEY": "sk-ant-chaos-" + secrets.token_urlsafe(24),
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{PORTS['anthropic']}", "ANTHROPIC_MODEL": ANTHROPIC_MODEL,
        "ANTHROPIC_TIMEOUT_SECONDS": "30", "EMAIL_BACKEND": "emails.backends.SMTPBackend",
        "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(PORTS["smtp"]), "EMAIL_TIMEOUT": "10",
        "DEFAULT_FROM_EMAIL": "Agency <hello@chaos.test>",
        "WEB_PORT": str(PORTS["web"]), "FLOWER_PORT": str(PORTS["flower"]),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{PORTS['web']}", "LOG_LEVEL": "INFO",
        **SCALED_RATES,
    }
    for name in ("EMAIL_URL", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS", "EMAIL_USE_SSL"):
        os.environ.pop(name, None)  # the sink speaks plain SMTP without a login
    for name in ("AI_DAILY_BUDGET_USD", "ANTHROPIC_MODEL_PRICES"):
        os.environ.pop(name, None)  # the budget comes from the run's ENV_FILE; the model's price from the table
    return env


def db_call(fn, default=None):
    """fn() against the database, or `default` while PostgreSQL is away (the connection is dropped
    so the next call opens a new one)."""
    from django.db import DatabaseError, connection

    try:
        return fn()
    except DatabaseError:
        connection.close()
        return default


def unfinished_jobs() -> int:
    from workers.models import Job

    return Job.objects.filter(state__in=["pending", "dispatched", "running", "retry"]).count()


def wait_until_final(lead_job_ids: list[str], deadline: float, what: str) -> bool:
    """Until every lead's job exists and nothing in the ledger is unfinished, seen twice 2 s apart."""
    from workers.models import Job

    calm = 0
    last_report = 0.0
    while time.monotonic() < deadline:
        state = db_call(lambda: (Job.objects.filter(id__in=lead_job_ids).count(), unfinished_jobs()))
        if state is not None:
            present, open_ = state
            calm = calm + 1 if present == len(lead_job_ids) and open_ == 0 else 0
            if calm >= 2:
                return True
            if time.monotonic() - last_report > 30:
                log(f"waiting ({what}): {present}/{len(lead_job_ids)} lead jobs in the ledger, {open_} jobs unfinished")
                last_report = time.monotonic()
        time.sleep(2)
    return False


def decide_unknown(sink) -> tuple[int, int]:
    """Emails a kill left `unknown` (claimed, then the worker died: it may or may not have reached the
    server), decided as docs/guarantees.md tells a person to: its Message-ID at the server means sent;
    otherwise send it again. Returns (marked sent, sent again)."""
    from emails import services
    from emails.models import Message

    with sink.lock:
        received = {str(m["Message-ID"]).strip().split("@")[0] for m in sink.messages}
    marked = resent = 0
    for message in Message.objects.filter(status="unknown"):
        if f"<msg-{message.id}" in received:
            marked += services.mark_unknown_sent(message.id)
        else:
            resent += services.resend_unknown(message.id)
    return marked, resent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--deadline-minutes", type=float, default=20.0)
    parser.add_argument("--kill-every", type=float, default=15.0)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    hard_deadline = _t0 + args.deadline_minutes * 60
    work_deadline = hard_deadline - CLEANUP_SECONDS
    print(f"make chaos: {args.leads} leads through the webhook, seed {seed}; a worker process SIGKILLed every "
          f"{args.kill_every:g} s, one pool's rolling restart, Redis restarted empty, PostgreSQL away 20 s; Claude "
          f"is a fake API on loopback (MOCK_MODE=false) and a daily budget is reached, held, then raised")
    print(f"hard deadline: {args.deadline_minutes:g} min (at {time.strftime('%H:%M:%S', time.localtime(time.time() + args.deadline_minutes * 60))}); "
          f"expected about 10 min")
    print("rate limits scaled for the run (the contract's counts per 10 s instead of per minute): "
          + ", ".join(f"{k}={v}" for k, v in SCALED_RATES.items()), flush=True)

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    sys.path.insert(0, str(ROOT))
    from chaos import services

    leftovers, busy = clear_earlier_run(VAR, PORTS)
    if leftovers:
        log(f"killed {leftovers} process(es) left by an earlier make chaos")
    if busy:
        print(f"make chaos: ports in use by another program: {', '.join(busy)}", file=sys.stderr)
        return 2

    VAR.mkdir(parents=True, exist_ok=True)
    postgres = services.Postgres(VAR / "postgres", PORTS["postgres"])
    redis_server = services.Redis(PORTS["redis"], VAR / "redis.log")
    env = build_env(postgres.url, redis_server.url)
    os.environ.update(env)
    journal_path = VAR / "fake-anthropic.jsonl"

    sv = sink = killer = poster = fake_api = None
    phase = None
    outcome: list[str] = []
    checks = []
    figures: dict[str, object] = {}
    try:
        (VAR / "redis.log").unlink(missing_ok=True)
        log("starting PostgreSQL (throwaway cluster in var/chaos/postgres), redis-server, the SMTP sink, "
            "the fake Anthropic API")
        postgres.start()
        postgres.create_database()
        redis_server.start()
        fake_api = services.FakeApi(PORTS["anthropic"], seed, journal_path, VAR / "fake-anthropic.log", {MARK: str(VAR)})
        fake_api.start()

        import django

        django.setup()
        import logging

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # the sink's every SMTP command
        from django.conf import settings
        from django.core.management import call_command

        from bench.footprint import system_env
        from chaos import checks as chaos_checks
        from chaos import mail
        from chaos.client import Batch, Poster
        from chaos.faults import Killer, LimiterLog, postgres_outage, restart_programs, restart_redis, rolling_restart
        from fakes import anthropic as fake_anthropic
        from fakes.smtp import SmtpSink
        from leads.fake import make_fake_leads_with_kinds
        from workers.models import Job

        call_command("migrate", verbosity=0)
        sink = SmtpSink(port=PORTS["smtp"]).start()

        rng = random.Random(seed)
        planned = make_fake_leads_with_kinds(args.leads, rng=rng)
        # Its own generator: the run's other choices stay what they were for a seed.
        sink_plan = mail.plan_refusals(planned, random.Random(seed + 2))
        mail.apply(sink, sink_plan)
        log(f"the SMTP sink refuses {len(sink_plan.no_mailbox)} qualifying leads' addresses as unknown mailboxes "
            f"({mail.NO_MAILBOX_REPLY[:9]} at RCPT, every try), and the first try of {len(sink_plan.at_rcpt_421)} "
            f"others with 421 at RCPT and of {len(sink_plan.after_data_451)} with 451 after DATA")
        budget = budget_for(sum(kind == "original" for kind, _ in planned), settings.AI_MODEL_PRICES[ANTHROPIC_MODEL],
                            fake_anthropic.mean_usage(), fake_anthropic.paid_answers_per_site())
        phase = BudgetPhase(budget, VAR / "budget.env", log)
        write_budget(phase.env_file, budget)
        log(f"daily budget AI_DAILY_BUDGET_USD=${budget} in {phase.env_file} (the fake's mean answer at "
            f"{ANTHROPIC_MODEL}'s prices, {BUDGET_SHARE:.0%} of the expected paid answers)")
        # Only the programs read the file; this process keeps ENV_FILE empty and takes the budget as figures.
        programs_env = {**system_env(lift_limits=False), **env, "ENV_FILE": str(phase.env_file)}
        sv = services.supervisor(programs_env, VAR / "run")
        log(f"starting supervisord ({sv.conf}; logs in {sv.tmp / 'log'})")
        sv.start()
        import workers_helper as wh

        wh.CONF, wh.CTL = sv.conf, [wh.CTL[0], "-c", str(sv.conf)]
        problems = wh.wait_consumers(wh.load_workers(), 60)
        if problems:
            raise RuntimeError(f"workers do not consume: {problems}")
        log(f"all {len(sv.states())} programs RUNNING, every worker consumes its queues")

        batches = [Batch(f"chaos-{seed}-{i // BATCH}", [lead for _, lead in planned[i:i + BATCH]],
                         [kind for kind, _ in planned[i:i + BATCH]]) for i in range(0, len(planned), BATCH)]
        figures["kinds"] = Counter(kind for kind, _ in planned)
        interval = POST_SECONDS / max(1, len(batches) - 1)
        poster = Poster(PORTS["web"], env["CLAY_WEBHOOK_SECRET"], batches, interval, work_deadline, log)
        killer = Killer(sv, log, interval=args.kill_every, rng=random.Random(seed + 1))
        log(f"posting {args.leads} leads in {len(batches)} batches of {BATCH}, one every {interval:.1f} s "
            f"({dict(figures['kinds'])}); the killer starts")
        limiter_log = LimiterLog(redis_server.url, tuple(settings.QUEUE_NAMES))
        limiter_log.start()
        posting_started = time.monotonic()
        poster.start()
        killer.start()

        def at(seconds: float) -> None:
            while time.monotonic() < posting_started + seconds:
                if time.monotonic() > work_deadline:
                    raise TimeoutError("the deadline passed during the faults")
                time.sleep(0.5)

        at(40)
        figures["restart"] = rolling_restart(sv, rng.choice(("primary", "backup")), log)
        at(100)
        restart_redis(redis_server, log)
        at(160)
        figures["pg_down"] = postgres_outage(postgres, log, 20.0)

        def site_jobs_done() -> bool:
            return poster.done.is_set() and not Job.objects.filter(
                queue="site-generation", state__in=["pending", "dispatched", "running", "retry"]).exists()

        if phase.wait_for_pause(db_call, work_deadline, site_jobs_done):
            phase.hold(db_call)
            def restart_budget_readers(pool: str) -> float:
                # The programs that read the budget: the site-generation workers and the dispatchers.
                return restart_programs(sv, [f"{pool}:{name}" for name in sv.groups[pool]
                                             if name.startswith(("network-", "dispatcher-"))], log)

            if not phase.raise_budget(restart_budget_readers, db_call, work_deadline):
                outcome.append("the budget's pause was not lifted after the raise")
        else:
            outcome.append("the daily budget was never reached: its checks proved nothing")

        while not poster.done.wait(1):
            if time.monotonic() > work_deadline:
                raise TimeoutError("the deadline passed while posting")
        if poster.error:
            raise RuntimeError(f"webhook client: {poster.error}")
        log(f"all {len(batches)} batches accepted ({poster.retries} retries; answers {poster.answers}); waiting "
            "until every lead and job is final")
        lead_job_ids = [j for b in batches for j in b.job_ids]
        invalid_job_ids = {j for b in batches for j, kind in zip(b.job_ids, b.kinds) if kind == "invalid"}
        if not wait_until_final(lead_job_ids, work_deadline, "under fire"):
            outcome.append("not final by the deadline")
        killer.stop()
        log(f"final; the killer stops after {len(killer.kills)} kills")
        marked, resent = db_call(lambda: decide_unknown(sink), (0, 0))
        figures["unknown"] = (marked, resent)
        log(f"emails left unknown by kills, decided at the sink by Message-ID: {marked} found (marked sent), "
            f"{resent} not found (sent again)")
        if resent and not wait_until_final(lead_job_ids, work_deadline, "resent emails"):
            outcome.append("resent emails not final by the deadline")
        time.sleep(3)  # anything still moving would show now

        bound = settings.QUEUE_CONCURRENCY["site-generation"] * settings.WORKER_POOLS
        checks = chaos_checks.every_check(
            lead_job_ids=lead_job_ids, invalid_job_ids=invalid_job_ids,
            sink_counts=chaos_checks.recipients(list(sink.messages)), sink_refused=list(sink.refused),
            sink_plan=sink_plan,
            limits={q: settings.QUEUE_RATE_LIMITS[q] for q in settings.QUEUE_NAMES},
            journal=fake_anthropic.read_journal(journal_path), budget=phase.check_args(bound),
            limiter_log=limiter_log.starts())
        limiter_log.stop()
    except Interrupted as exc:
        outcome.append(f"interrupted ({exc})")
    except Exception as exc:  # noqa: BLE001 - reported as a FAIL line, then everything is stopped
        outcome.append(f"{type(exc).__name__}: {exc}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # cleanup is bounded; a second Ctrl-C must not cut it short
        cleanup(sv, sink, killer, redis_server, postgres, fake_api)

    duration = time.monotonic() - _t0
    kills = killer.kills if killer else []
    print()
    print(f"make chaos, seed {seed}: {duration:.0f} s ({duration / 60:.1f} min; hard deadline "
          f"{args.deadline_minutes:g} min), {args.leads} leads {dict(figures.get('kinds', {}))}, "
          f"{len(kills)} kills ({sum(k.what == 'main process' for k in kills)} main processes, "
          f"{sum(k.what == 'pool child' for k in kills)} pool children: "
          f"{dict(Counter(k.program for k in kills))})")
    if poster:
        print(f"webhook: {len(poster.batches)} batches, {poster.retries} retries with the same Idempotency-Key, "
              f"answers {poster.answers}, replayed {sum(b.replayed for b in poster.batches)}")
    if "restart" in figures:
        print(f"faults: rolling restart {figures['restart']:.1f} s; Redis restarted empty; PostgreSQL away "
              f"{figures.get('pg_down', 0):.1f} s; emails unknown after kills: {figures.get('unknown')} "
              "(found at the sink and marked sent, sent again)")
    if phase is not None:
        print(f"budget: ${phase.budget}; paused {'at ' + time.strftime('%H:%M:%S', time.localtime(phase.paused_at)) if phase.paused_at else 'never'}"
              f", {phase.waiting} site jobs waiting and {phase.dead} dead after {HOLD_SECONDS:g} s; raised x{RAISED_FACTOR}, "
              f"pools restarted in {', '.join(f'{t:.1f} s' for t in phase.restarts) or '-'}, pause lifted "
              f"{f'{phase.lifted_after:.1f} s after' if phase.lifted_after is not None else 'never'}")
    for check in checks:
        print(check.line())
    for problem in outcome:
        print(f"FAIL  run: {problem}")
    ok = bool(checks) and all(c.ok for c in checks) and not outcome
    print(f"make chaos: {'PASS' if ok else 'FAIL'} (logs in {VAR / 'run' / 'log'})")
    return 0 if ok else 1


def cleanup(sv, sink, killer, redis_server, postgres, fake_api) -> None:
    """Stop everything the run started, whatever state it is in; each step bounded."""
    if killer:
        killer.stop()
    if sv is not None:
        try:
            log("stopping supervisord and its programs")
            sv.stop()
        except Exception as exc:  # noqa: BLE001
            log(f"supervisord did not stop cleanly: {exc}")
    left = 0
    try:
        # Whatever is left of the system (a worker that outlived supervisord, a pool child): SIGKILL,
        # except redis-server and the cluster, stopped in order below.
        keep = {redis_server.proc.pid} if redis_server and redis_server.proc else set()
        for pid in marked_pids(str(VAR)):
            if pid not in keep and "postgres" not in services_cmdline(pid):
                os.kill(pid, signal.SIGKILL)
                left += 1
    except Exception:  # noqa: BLE001
        pass
    if left:
        log(f"killed {left} process(es) left after supervisord stopped")
    for server in (sink, fake_api):
        if server is not None:
            try:
                server.stop()
            except Exception:  # noqa: BLE001
                pass
    if redis_server is not None:
        redis_server.stop()
    try:
        log_dir = VAR / "run" / "log"
        if (postgres.datadir / "server.log").exists() and log_dir.exists():
            shutil.copy(postgres.datadir / "server.log", log_dir / "postgres.log")
        postgres.remove()
    except Exception as exc:  # noqa: BLE001
        log(f"PostgreSQL cluster not removed: {exc}")
    remaining = marked_pids(str(VAR))
    for pid in remaining:
        if "postgres" not in services_cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def services_cmdline(pid: int) -> str:
    from chaos.services import cmdline

    return cmdline(pid)


if __name__ == "__main__":
    sys.exit(main())
