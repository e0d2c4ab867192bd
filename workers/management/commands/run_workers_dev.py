"""Development workers: all four queues in one foreground process tree, restarted when a .py file changes.

    make workers                                   # .env.local, Redis, migrations, then this command
    .venv/bin/python manage.py run_workers_dev [--concurrency 4] [--stop-timeout 30]

The process tree:

    run_workers_dev              parent: handles Ctrl-C / SIGTERM / SIGHUP, starts a new runner after a reload
      run_workers_dev            runner (RUN_MAIN=true): Django's autoreloader watches the project's .py files
        celery -A resilience worker -Q <all four queues> -c 4 -n dev@<host> -l info
        manage.py run_dispatcher

When a .py file changes the runner stops both children (Celery's warm shutdown: running tasks finish) and
exits with code 3, and the parent starts a new runner. Ctrl-C (or SIGTERM) stops the children the same
way; a second Ctrl-C kills them at once. The runner and the children run in their own process groups, so
a terminal's Ctrl-C reaches only the parent, which passes it on in order. Logs go to the console.

Not while the supervisord system of `make up` runs: both would consume the same queues.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload

from resilience.logfiles import write_owner_only
from workers.processes import cmdline

RELOAD_EXIT_CODE = 3  # what django.utils.autoreload.trigger_reload exits with
PARENT_PID_ENV = "RUN_WORKERS_DEV_PARENT"
CHILDREN_FILE = "workers-dev.children"  # in var/: the runner's children, in case it dies without stopping them
SKIPPED_DIRS = {"tests", "node_modules", "var", "static"}


def say(message: str) -> None:
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def project_python_dirs(root: Path) -> list[Path]:
    """The project's top-level Python packages: what a code change can happen in (not .venv, not tests)."""
    return sorted(
        path for path in root.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name not in SKIPPED_DIRS
        and (path / "__init__.py").exists()
    )


def python_files_snapshot(root: Path) -> dict[Path, float]:
    files = list(root.glob("*.py"))
    for directory in project_python_dirs(root):
        files.extend(directory.glob("**/*.py"))
    snapshot = {}
    for path in files:
        try:
            snapshot[path] = path.stat().st_mtime
        except OSError:
            pass
    return snapshot


def worker_command(concurrency: int, queues: tuple[str, ...] | list[str]) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q", ",".join(queues),
            "-c", str(concurrency), "-n", "dev@%h", "-l", "info"]


def dispatcher_command(root: Path) -> list[str]:
    return [sys.executable, str(root / "manage.py"), "run_dispatcher"]


def process_matches(pid: int, name: str) -> bool:
    """Process pid is alive and its command line mentions name (so not a recycled pid)."""
    return name in cmdline(pid)


def running_pid(pid_file: Path, name: str) -> int | None:
    """The pid in pid_file if that process is alive and its command line mentions name."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if process_matches(pid, name) else None


def stop_leftovers(children_file: Path, timeout: float) -> None:
    """Stop children a runner that died abruptly (SIGKILL) left behind; children_file lists them."""
    try:
        pids = [int(line) for line in children_file.read_text().split()]
    except (OSError, ValueError):
        return
    left = [pid for pid in pids if process_matches(pid, "celery") or process_matches(pid, "run_dispatcher")]
    for pid in left:
        say(f"the runner left pid {pid} behind: stopping it")
        _killpg_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process_matches(pid, "") for pid in left) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        _killpg_pid(pid, signal.SIGKILL)
    children_file.unlink(missing_ok=True)


class Children:
    """The runner's two child processes: started together, stopped together."""

    def __init__(self, commands: dict[str, list[str]], *, cwd: Path, env: dict[str, str], stop_timeout: float,
                 children_file: Path | None = None):
        self.commands = commands
        self.children_file = children_file
        self.cwd = cwd
        self.env = env
        self.stop_timeout = stop_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.parent_pid = os.getppid()

    def run(self) -> None:
        """Start the children, then watch them (in the autoreloader's django-main-thread)."""
        with self.lock:
            if self.stopping.is_set():
                return
            for name, command in self.commands.items():
                # A session of its own: a terminal's Ctrl-C does not reach it, stop() decides the order.
                self.procs[name] = subprocess.Popen(command, cwd=self.cwd, env=self.env, start_new_session=True)
            if self.children_file:  # for the parent, should this process die without stopping them
                pids = "".join(f"{proc.pid}\n" for proc in self.procs.values())
                write_owner_only(self.children_file, pids.encode())
            say("started " + ", ".join(f"{name} (pid {proc.pid})" for name, proc in self.procs.items())
                + "; watching .py files for changes")
        reported: set[str] = set()
        while not self.stopping.wait(0.5):
            for name, proc in self.procs.items():
                if name not in reported and proc.poll() is not None:
                    reported.add(name)
                    say(f"{name} exited with code {proc.returncode}: fix the error and save a .py file to "
                        "restart (Ctrl-C to quit)")
            if os.getppid() != self.parent_pid:
                say("the parent process is gone: stopping")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def stop(self, reason: str) -> None:
        """Warm shutdown of every child (SIGTERM), up to stop_timeout; then SIGKILL. A further SIGTERM or
        SIGINT (a second Ctrl-C) kills them at once."""
        with self.lock:
            self.stopping.set()
        running = {name: proc for name, proc in self.procs.items() if proc.poll() is None}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: self.kill("asked again: killing them now"))
        if running:
            say(f"{reason}: stopping {', '.join(running)} (running tasks may finish, up to {self.stop_timeout:g} s)")
        for proc in running.values():
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for name, proc in running.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(f"{name} did not stop within {self.stop_timeout:g} s: killing it")
                proc.wait()
        for proc in self.procs.values():
            _killpg(proc)  # a pool process left behind by a child that exited, if any
        if self.children_file:
            self.children_file.unlink(missing_ok=True)
        if running:
            say("stopped " + ", ".join(f"{name} (exit {proc.returncode})" for name, proc in running.items()))

    def kill(self, why: str = "") -> None:
        if why:
            say(why)
        for proc in self.procs.values():
            _killpg(proc)


def _signal(proc: subprocess.Popen, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass


def _killpg(proc: subprocess.Popen) -> None:
    _killpg_pid(proc.pid, signal.SIGKILL)  # the child leads its own session and process group


def _killpg_pid(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class Command(BaseCommand):
    help = ("Development workers: one Celery worker for all four queues and a dispatcher, in the foreground, "
            "restarted when a .py file changes (make workers).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--concurrency", type=int, default=4, help="Celery pool processes (default 4)")
        parser.add_argument("--stop-timeout", type=float, default=30.0,
                            help="seconds the children get to finish running tasks on a reload or Ctrl-C "
                                 "before they are killed (default 30)")

    def handle(self, *args, concurrency: int, stop_timeout: float, **options) -> None:
        root = Path(settings.BASE_DIR)
        if os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
            self.run_runner(root, concurrency, stop_timeout)
        else:
            sys.exit(self.run_parent(root, stop_timeout))

    # --- parent ---------------------------------------------------------------------------------

    def run_parent(self, root: Path, stop_timeout: float) -> int:
        var = root / "var"
        if pid := running_pid(var / "supervisord.pid", "supervisord"):
            raise CommandError(f"the supervisord system of `make up` is running (pid {pid}) and its workers consume "
                               "the same queues: stop it first (make down), or use make workers-status/-logs")
        pid_file = var / "workers-dev.pid"
        if pid := running_pid(pid_file, "run_workers_dev"):
            raise CommandError(f"make workers is already running (pid {pid})")
        var.mkdir(exist_ok=True)
        write_owner_only(pid_file, f"{os.getpid()}\n".encode())

        runner: subprocess.Popen | None = None
        stop_requests = 0

        def on_signal(signum, frame) -> None:
            nonlocal stop_requests
            stop_requests += 1
            if stop_requests == 1:
                say(f"{signal.Signals(signum).name}: stopping (again to kill at once)")
            if runner is not None and runner.poll() is None:
                _signal(runner, signal.SIGTERM)  # the runner stops its children, or kills them on a second one

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)
        env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true", PARENT_PID_ENV: str(os.getpid()),
               "MOCK_MODE": "true", "PYTHONUNBUFFERED": "1"}
        try:
            while not stop_requests:
                started = time.monotonic()
                # Its own process group, so that a terminal's Ctrl-C reaches only this process.
                runner = subprocess.Popen(autoreload.get_child_arguments(), env=env, process_group=0)
                if stop_requests:  # a signal that came while the runner was being started
                    _signal(runner, signal.SIGTERM)
                code = runner.wait()
                stop_leftovers(root / "var" / CHILDREN_FILE, stop_timeout)
                if stop_requests:
                    break
                if code == RELOAD_EXIT_CODE:
                    continue
                say(f"the runner exited with code {code} after {time.monotonic() - started:.0f} s: fix the error "
                    "and save a .py file to start again (Ctrl-C to quit)")
                snapshot = python_files_snapshot(root)
                while not stop_requests and python_files_snapshot(root) == snapshot:
                    time.sleep(1)
        finally:
            if runner is not None and runner.poll() is None:
                runner.wait()
                stop_leftovers(root / "var" / CHILDREN_FILE, stop_timeout)
            if running_pid(pid_file, "run_workers_dev") == os.getpid():
                pid_file.unlink(missing_ok=True)
        say("stopped")
        return 0

    # --- runner ---------------------------------------------------------------------------------

    def run_runner(self, root: Path, concurrency: int, stop_timeout: float) -> None:
        env = {name: value for name, value in os.environ.items()
               if name not in (autoreload.DJANGO_AUTORELOAD_ENV, PARENT_PID_ENV)}
        children = Children(
            {"celery worker": worker_command(concurrency, settings.QUEUE_NAMES),
             "dispatcher": dispatcher_command(root)},
            cwd=root, env=env, stop_timeout=stop_timeout, children_file=root / "var" / CHILDREN_FILE,
        )

        def watch_project(sender, **kwargs) -> None:
            # The runner itself imports little of the project: watch every package's .py files.
            sender.watch_dir(root, "*.py")
            for directory in project_python_dirs(root):
                sender.watch_dir(directory, "**/*.py")

        autoreload.autoreload_started.connect(watch_project)
        reason = "shutting down"
        try:
            autoreload.run_with_reloader(children.run)
        except SystemExit as exc:
            if exc.code == RELOAD_EXIT_CODE:
                reason = "code changed"
            raise
        finally:
            children.stop(reason)
