"""The faults make chaos injects while the leads flow: a worker process SIGKILLed every 15 s, one pool's
rolling restart, a Redis restart that keeps nothing, PostgreSQL away for 20 s."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.footprint import ROOT
from workers.processes import process_tree

WORKER_MARK = "workers.run_celery"  # what a worker's command line holds (deploy/supervisord.conf)


@dataclass
class Kill:
    at: float
    program: str
    pid: int
    what: str  # "main process" or "pool child"


@dataclass
class Killer:
    """Every `interval` seconds, SIGKILL one worker process chosen at random: a worker program of
    either pool that supervisord shows RUNNING (one the rolling restart is stopping or starting is
    left to it), then its main process or one of its pool children. The program first, so the threads
    workers (one process each) are hit as often as the prefork ones with their children."""

    sv: object  # bench.footprint.Supervisor
    log: Callable[[str], None]
    interval: float = 15.0
    rng: random.Random = field(default_factory=random.Random)
    kills: list[Kill] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def worker_programs(self) -> list[str]:
        return [f"{w.pool}:{w.program}" for w in self.sv.workers]

    def candidates(self) -> dict[str, list[tuple[int, str]]]:
        states = self.sv.states()
        found: dict[str, list[tuple[int, str]]] = {}
        for program in self.worker_programs():
            if states.get(program) != "RUNNING":
                continue
            main = self.sv.pid(program)
            if not main:
                continue
            found[program] = [(main, "main process"),
                              *((pid, "pool child") for pid in process_tree(main) if pid != main)]
        return found

    def kill_one(self) -> Kill | None:
        candidates = self.candidates()
        if not candidates:
            self.log("kill: no worker process RUNNING to kill")
            return None
        program = self.rng.choice(sorted(candidates))
        pid, what = self.rng.choice(candidates[program])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        kill = Kill(time.monotonic(), program, pid, what)
        self.kills.append(kill)
        self.log(f"kill #{len(self.kills)}: SIGKILL {program} {what} {pid}")
        return kill

    def run(self) -> None:
        # On a fixed schedule (every interval from the start), however long choosing takes.
        start, n = time.monotonic(), 0
        while True:
            n += 1
            if self.stop_event.wait(max(0.0, start + n * self.interval - time.monotonic())):
                return
            try:
                self.kill_one()
            except Exception as exc:  # supervisorctl timing out under load: try again next round
                self.log(f"kill: skipped this round ({type(exc).__name__}: {exc})")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="killer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()


def rolling_restart(sv, pool: str, log: Callable[[str], None], seconds: float = 90) -> float:
    """What deploy/workers.sh restart does for one pool (workers_helper.cmd_restart's loop body): the
    other pool must consume every queue first; stop the pool (warm shutdown), start it, wait until its
    workers consume again. Run against this run's supervisord. Returns the seconds it took."""
    import workers_helper as wh

    # workers_helper speaks to make up's supervisord; point it at ours for this run.
    wh.CONF, wh.CTL = sv.conf, [wh.CTL[0], "-c", str(sv.conf)]
    started = time.monotonic()
    other = [name for name in wh.POOLS if name != pool]
    expected_other = wh.load_workers(other)
    deadline = time.monotonic() + 60
    while problems := wh.check_consumers(expected_other):
        # A kill may have just taken one of the other pool's workers: it is back within seconds.
        if time.monotonic() > deadline:
            raise RuntimeError(f"rolling restart of {pool}: {'/'.join(other)} does not consume every queue: {problems}")
        time.sleep(1)
    log(f"rolling restart of {pool}: {'/'.join(other)} consumes every queue; stopping {pool} (warm shutdown)")
    result = wh.ctl("stop", f"{pool}:*", timeout=wh.stop_wait_seconds() + 60)
    if failures := wh._ctl_failures(result.stdout + result.stderr):
        raise RuntimeError(f"rolling restart: stopping {pool}: {failures}")
    if wh.start_pools([pool], seconds) is None:
        raise RuntimeError(f"rolling restart: {pool} did not consume again within {seconds:g} s")
    took = time.monotonic() - started
    log(f"rolling restart of {pool} done in {took:.1f} s")
    return took


def restart_programs(sv, programs: list[str], log: Callable[[str], None], seconds: float = 120) -> float:
    """supervisorctl restart of these programs (a warm stop: their running tasks finish first), then
    until each is RUNNING again: what an operator does after a change to what they read at start.
    Returns the seconds it took."""
    import workers_helper as wh

    started = time.monotonic()
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(sv.conf), "restart", *programs],
                            capture_output=True, text=True, timeout=wh.stop_wait_seconds() + seconds)
    if failures := wh._ctl_failures(result.stdout + result.stderr):
        raise RuntimeError(f"restarting {', '.join(programs)}: {failures}")
    deadline = time.monotonic() + seconds
    while (states := sv.states()) and any(states.get(name) != "RUNNING" for name in programs):
        # A kill may have just taken one of them: supervisord starts it again within seconds.
        if time.monotonic() > deadline:
            raise RuntimeError(f"restarted programs not RUNNING after {seconds:g} s: {states}")
        time.sleep(1)
    took = time.monotonic() - started
    log(f"restarted {', '.join(programs)} in {took:.1f} s")
    return took


def restart_redis(redis_server, log: Callable[[str], None], down_seconds: float = 2.0) -> None:
    """SIGKILL the run's redis-server and start it again empty (it keeps nothing on disk)."""
    log(f"Redis: SIGKILL, {down_seconds:g} s down, started again empty")
    redis_server.stop(signal.SIGKILL)
    time.sleep(down_seconds)
    redis_server.start()


def postgres_outage(postgres, log: Callable[[str], None], seconds: float = 20.0) -> float:
    """Stop the run's cluster (fast shutdown: every connection cut), keep it down `seconds`, start it
    again. Returns how long it did not answer."""
    log(f"PostgreSQL: stopped (connections cut) for {seconds:g} s")
    down = time.monotonic()
    postgres.stop()
    time.sleep(max(0.0, seconds - (time.monotonic() - down)))
    postgres.start()
    took = time.monotonic() - down
    log(f"PostgreSQL: answering again after {took:.1f} s")
    return took


@dataclass
class LimiterLog:
    """Every start the rate limiter logs in Redis (member -> Redis time, s), read every 0.5 s while the
    run lasts (the log forgets a start after its period; a Redis restart loses the last half second).
    The rebuilt log's stand-ins for the ledger's starts ("ledger:<n>") are not starts and are left out."""

    url: str
    queues: tuple[str, ...]
    seen: dict[str, dict[bytes, float]] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        import redis

        from workers import ratelimit

        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        while not self.stop_event.wait(0.5):
            for queue in self.queues:
                try:
                    rows = client.zrangebyscore(ratelimit.KEY_PREFIX + queue, "-inf", "(+inf", withscores=True)
                except redis.RedisError:
                    break  # Redis restarting
                for member, score in rows:
                    if not member.startswith(b"ledger:"):
                        self.seen.setdefault(queue, {})[member] = score / 1000

    def starts(self) -> dict[str, list[float]]:
        return {queue: list(members.values()) for queue, members in self.seen.items()}

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="limiter-log", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stop_event.set()
