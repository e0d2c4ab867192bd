"""Real worker and dispatcher processes for system tests, sharing the test database and Redis db."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


class ProcessGroup:
    """Starts processes with the test settings and stops every one of them, whatever happens."""

    def __init__(self, log_dir: Path, **env: str) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "TEST_DB_NAME": connection.settings_dict["NAME"],
            "PYTHONUNBUFFERED": "1",
            **env,
        }

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, queue: str, pool: str, concurrency: int) -> subprocess.Popen:
        return self.start(f"{queue}@{pool}", [
            sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q", queue, "-c", str(concurrency),
            "-n", f"{queue}@{pool}.%h", "--without-gossip", "--without-mingle", "-l", "info",
        ])

    def dispatcher(self, pool: str) -> subprocess.Popen:
        return self.start(f"dispatcher-{pool}", [sys.executable, "manage.py", "run_dispatcher"])

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        """Until a celery worker logs that it consumes (its log says 'ready.')."""
        log = self.log_dir / f"{name}.log"
        if not wait_for(lambda: " ready." in log.read_text(errors="replace"), timeout):
            raise AssertionError(f"{name} did not become ready in {timeout}s\n{self.logs()}")

    def stop_all(self, timeout: float = 15) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self, lines: int = 40) -> str:
        out = []
        for name in self.procs:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
