"""Helpers for deploy/workers.sh (make workers-*), run with the project's .venv python while supervisord runs.

    nodes [POOL ...]     the Celery node names of the pools' workers, as in deploy/supervisord.conf
    status               supervisorctl status, then whether every worker node consumes its queue
    start                start the primary and backup groups and wait until their workers consume
    stop                 stop the worker groups (warm shutdown); web, Flower and supervisord keep running
    restart [SECONDS]    rolling restart: primary, then backup (each must consume again within SECONDS,
                         default 60), then a graceful reload of the web app

Which programs and node names belong to a pool is read from deploy/supervisord.conf, so this follows
the config. Whether a worker consumes its queue is asked of the worker itself (celery inspect
active_queues), not of supervisord: RUNNING only means the process has stayed up 10 s.
"""
from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from up_helper import http_status  # noqa: E402 - the sibling script, shared

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "supervisord.conf"
CTL = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(CONF)]
POOLS = ("primary", "backup")


@dataclass(frozen=True)
class Worker:
    program: str               # supervisord program, e.g. lead-processing-primary
    pool: str                  # its group, e.g. primary
    node: str                  # Celery node name template, e.g. lead-processing@primary.%h
    queues: tuple[str, ...]    # what it consumes (-Q)

    def node_name(self, hostname: str | None = None) -> str:
        from celery.utils.nodenames import host_format

        return host_format(self.node, host=hostname)


def parse_config(text: str) -> tuple[dict[str, list[str]], list[Worker]]:
    """(group -> its programs, the Celery workers of the groups) from supervisord.conf's text."""
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    groups = {
        section.split(":", 1)[1]: [name.strip() for name in parser.get(section, "programs").split(",") if name.strip()]
        for section in parser.sections() if section.startswith("group:")
    }
    workers = []
    for group, programs in groups.items():
        for program in programs:
            section = f"program:{program}"
            if not parser.has_option(section, "command"):
                continue
            # supervisord writes a literal % as %%; its %(here)s expansions do not matter here.
            args = shlex.split(parser.get(section, "command").replace("%%", "%"))
            if "worker" not in args or not any(arg.endswith("celery") for arg in args[: args.index("worker")]):
                continue
            node, queues = _option(args, "-n", "--hostname"), _option(args, "-Q", "--queues")
            if not node or not queues:
                raise ValueError(f"[{section}] runs a Celery worker without -n and -Q: cannot tell what it consumes")
            workers.append(Worker(program, group, node, tuple(queue for queue in queues.split(",") if queue)))
    return groups, workers


def _option(args: list[str], short: str, long: str) -> str | None:
    for index, arg in enumerate(args):
        if arg in (short, long) and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
    return None


def load_workers(pools: tuple[str, ...] | list[str] = POOLS) -> dict[str, tuple[str, ...]]:
    """node name -> queues, for the workers of the given pools on this host."""
    _, workers = parse_config(CONF.read_text())
    return {worker.node_name(): worker.queues for worker in workers if worker.pool in pools}


def consumer_problems(expected: dict[str, tuple[str, ...]], replies: dict[str, list[dict]] | None) -> dict[str, str]:
    """node -> what is wrong with it, from `inspect active_queues` replies; empty when all consume."""
    replies = replies or {}
    problems = {}
    for node, queues in expected.items():
        if node not in replies:
            problems[node] = "does not answer"
            continue
        consumed = {queue.get("name") for queue in replies[node] or []}
        missing = [queue for queue in queues if queue not in consumed]
        if missing:
            problems[node] = f"answers but does not consume {', '.join(missing)}"
    return problems


def check_consumers(expected: dict[str, tuple[str, ...]], timeout: float = 2.0) -> dict[str, str]:
    if not expected:
        return {}
    from resilience.env import load_settings_or_exit
    from workers.celery_app import celery_app

    load_settings_or_exit()
    try:
        replies = celery_app().control.inspect(destination=list(expected), timeout=timeout).active_queues()
    except Exception as exc:  # Redis away ...
        return {node: f"cannot ask it ({type(exc).__name__}: {exc})" for node in expected}
    return consumer_problems(expected, replies)


def wait_consumers(expected: dict[str, tuple[str, ...]], seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        problems = check_consumers(expected, timeout=min(2.0, max(0.5, deadline - time.monotonic())))
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(0.5)


def log_of(node: str, workers_by_node: dict[str, str]) -> str:
    return f"var/log/{workers_by_node.get(node, node)}.log"


# --- supervisorctl ---------------------------------------------------------------------------------

def ctl(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CTL, *args], capture_output=True, text=True, timeout=timeout)


def program_states() -> dict[str, str]:
    states = {}
    for line in ctl("status", timeout=30).stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def stop_wait_seconds() -> int:
    return int(os.environ.get("WORKER_STOP_WAIT_SECONDS") or 330)


class Step:
    """Prints `==> what ...` and, when done, how long it took."""

    def __init__(self, text: str) -> None:
        print(f"==> {text} ...", end="", flush=True)
        self.started = time.monotonic()
        self.seconds = 0.0

    def done(self, result: str) -> float:
        self.seconds = time.monotonic() - self.started
        print(f" {result} in {self.seconds:.1f} s", flush=True)
        return self.seconds

    def failed(self, result: str) -> None:
        self.seconds = time.monotonic() - self.started
        print(f" {result} after {self.seconds:.1f} s", flush=True)


COMMAND_NAMES = {"start": "make workers-prod", "stop": "make workers-stop", "restart": "make workers-restart",
                 "status": "make workers-status"}
command_name = "workers_helper"


def fail(message: str) -> int:
    print(f"{command_name}: {message}", file=sys.stderr)
    return 1


def _program_names(pool: str) -> list[str]:
    groups, _ = parse_config(CONF.read_text())
    return [f"{pool}:{name}" for name in groups.get(pool, [])]


def _ctl_failures(output: str) -> list[str]:
    """supervisorctl's ERROR lines, except stopping what is stopped and starting what runs."""
    return [line for line in output.splitlines() if "ERROR" in line and "(not running)" not in line
            and "(already started)" not in line]


def _start_groups(pools: list[str], timeout: float) -> list[str]:
    """Start the groups at once (one supervisorctl each: `start a:* b:*` waits for a before it starts b);
    the ERROR lines."""
    runs = [subprocess.Popen([*CTL, "start", f"{pool}:*"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for pool in pools]
    return [line for run in runs for line in _ctl_failures(run.communicate(timeout=timeout)[0])]


def _describe(problems: dict[str, str], programs: dict[str, str]) -> str:
    return "; ".join(f"{node} {problem} (log: {log_of(node, programs)})" for node, problem in problems.items())


def _workers_by_node() -> dict[str, str]:
    _, workers = parse_config(CONF.read_text())
    return {worker.node_name(): worker.program for worker in workers}


def start_pools(pools: list[str], seconds: float) -> tuple[float, float] | None:
    """Start the pools' programs and wait until their workers consume; (start s, consume s), or None
    (and why printed)."""
    programs = _workers_by_node()
    names = " and ".join(pools)
    step = Step(f"{names}: starting {'its' if len(pools) == 1 else 'their'} programs (each must stay up 10 s "
                "to count as started)")
    deadline = time.monotonic() + seconds
    failures = _start_groups(pools, seconds + 30)
    if failures:
        step.failed("failed")
        states = program_states()
        for name in (name for pool in pools for name in _program_names(pool)):
            if states.get(name) != "RUNNING":
                print(f"    {name}: {states.get(name, 'unknown')}; log: var/log/{name.split(':')[1]}.log", file=sys.stderr)
        fail(f"{names} did not start: " + " | ".join(failures))
        return None
    started = step.done("RUNNING")
    expected = load_workers(pools)
    step = Step(f"{names}: waiting until {'its' if len(pools) == 1 else 'their'} {len(expected)} workers consume "
                "their queues (celery inspect)")
    problems = wait_consumers(expected, max(1.0, deadline - time.monotonic()))
    if problems:
        step.failed("not all")
        fail(f"{names} did not come back within {seconds:g} s: {_describe(problems, programs)}")
        return None
    return started, step.done("all consume")


def cmd_nodes(pools: list[str]) -> int:
    for node, queues in load_workers(pools or POOLS).items():
        print(node, ",".join(queues))
    return 0


def cmd_status() -> int:
    result = ctl("status", timeout=30)
    print(result.stdout, end="")
    programs = _workers_by_node()
    states = program_states()
    for pool in POOLS:
        expected = load_workers([pool])
        # Only a RUNNING program can answer; for the others supervisord's state says enough.
        idle = [node for node in expected if states.get(f"{pool}:{programs.get(node)}") != "RUNNING"]
        problems = check_consumers({node: queues for node, queues in expected.items() if node not in idle})
        line = f"celery {pool}: {len(expected) - len(idle) - len(problems)}/{len(expected)} workers consume their queue"
        if idle:
            line += f"; not running: {', '.join(programs.get(node, node) for node in idle)}"
        if problems:
            line += "; " + _describe(problems, programs)
        print(line)
    return 0


def cmd_start(seconds: float) -> int:
    total = time.monotonic()
    if start_pools(list(POOLS), seconds) is None:
        return 1
    print(f"worker pools started in {time.monotonic() - total:.1f} s")
    return 0


def cmd_stop() -> int:
    step = Step(f"stopping the worker pools (warm shutdown: running tasks finish; up to {stop_wait_seconds()} s)")
    result = ctl("stop", *(f"{pool}:*" for pool in POOLS), timeout=stop_wait_seconds() + 60)
    if failures := _ctl_failures(result.stdout + result.stderr):
        step.failed("failed")
        return fail(" | ".join(failures))
    step.done("stopped")
    print("web, Flower and supervisord keep running; start the pools again with make workers-prod")
    return 0


def cmd_restart(seconds: float) -> int:
    programs = _workers_by_node()
    total = time.monotonic()
    timings: list[str] = []
    print("rolling restart: primary, then backup; the other pool consumes every queue meanwhile")
    for pool in POOLS:
        other = [name for name in POOLS if name != pool]
        expected_other = load_workers(other)
        step = Step(f"{pool}: checking that {'/'.join(other)} consumes every queue first")
        problems = check_consumers(expected_other)
        if problems:
            step.failed("no")
            return fail(f"not restarting {pool}: the {'/'.join(other)} pool is not consuming every queue, so the "
                        f"restart would stop work on them: {_describe(problems, programs)}. Fix that first "
                        f"(make workers-status), or restart without that guarantee: "
                        f".venv/bin/supervisorctl -c deploy/supervisord.conf restart {pool}:*")
        step.done(f"yes, {len(expected_other)}/{len(expected_other)}")
        pool_started = time.monotonic()
        step = Step(f"{pool}: stopping its workers and dispatcher (warm shutdown: running tasks finish; "
                    f"up to {stop_wait_seconds()} s)")
        result = ctl("stop", f"{pool}:*", timeout=stop_wait_seconds() + 60)
        if failures := _ctl_failures(result.stdout + result.stderr):
            step.failed("failed")
            return fail(f"stopping {pool}: " + " | ".join(failures))
        stopped = step.done("stopped")
        outcome = start_pools([pool], seconds)
        if outcome is None:
            return 1
        started, consuming = outcome
        timings.append(f"{pool} {time.monotonic() - pool_started:.1f} s (stop {stopped:.1f}, start {started:.1f}, "
                       f"consuming {consuming:.1f})")

    # The web app: hypercorn's HUP lets its worker process finish the requests in progress, then starts a
    # new one with the new code; the listening socket stays open, so requests meanwhile wait, none is refused.
    web_port = os.environ.get("WEB_PORT", "8000")
    if program_states().get("web") == "RUNNING":
        step = Step("web: graceful reload (hypercorn HUP: requests in progress finish, then a new process serves)")
        ctl("signal", "HUP", "web", timeout=30)
        time.sleep(1)
        deadline = time.monotonic() + 30
        while (code := http_status(f"http://127.0.0.1:{web_port}/healthz")) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        if code != 200:
            step.failed(f"GET /healthz -> {code or 'no answer'}")
            return fail("the web app does not answer after its reload: see var/log/web.log")
        timings.append(f"web {step.done('answers'):.1f} s")
    else:
        print("==> web: not running, left alone")
    print("==> flower: left running (it runs no job code; a restart would clear its task history)")
    print(f"rolling restart done in {time.monotonic() - total:.1f} s: " + "; ".join(timings))
    return 0


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    global command_name
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    command_name = COMMAND_NAMES.get(command, command_name)
    if command == "nodes":
        return cmd_nodes(args)
    if command == "status" and not args:
        return cmd_status()
    if command == "start" and len(args) <= 1:
        return cmd_start(float(args[0]) if args else 60)
    if command == "stop" and not args:
        return cmd_stop()
    if command == "restart" and len(args) <= 1:
        return cmd_restart(float(args[0]) if args else 60)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
