"""The servers make chaos runs for itself (never the machine's 5432 and 6379, never make up's): a
throwaway PostgreSQL cluster made by deploy/services.sh's ensure_local_postgres, a redis-server on its
own port that keeps nothing, the loopback SMTP sink of the tests, the fake Anthropic API of the tests
as a process of its own with its journal, and deploy/supervisord.conf started the way make bench
starts it (bench/footprint.py's Supervisor) with its var/ in var/chaos."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers import processes  # psutil only: no Django here

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))


def _bash(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A function of deploy/services.sh, run from the project root."""
    return subprocess.run(["bash", "-c", f". deploy/services.sh && {script}", "chaos", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


class Postgres:
    """A cluster of its own in `datadir` on 127.0.0.1:`port`: created and started, stopped and started
    again (the outage), stopped and removed at the end."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir, self.port = datadir, port
        from up_helper import database_url  # deploy/up_helper.py: a URL with a random password

        self.url = database_url(port, user="chaos", name="chaos")

    def start(self) -> None:
        result = _bash('ensure_local_postgres "$1" "$2" CHAOS_DATABASE_URL CHAOS_POSTGRES_PORT',
                       str(self.datadir), str(self.port))
        if result.returncode:
            raise RuntimeError(f"PostgreSQL for make chaos did not start: {result.stderr.strip()}")

    def create_database(self) -> None:
        result = subprocess.run([sys.executable, "deploy/up_helper.py", "local-db", str(self.datadir), self.url],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise RuntimeError(f"could not create the chaos database: {result.stderr.strip() or result.stdout}")

    def stop(self) -> None:
        result = _bash('stop_local_postgres "$1"', str(self.datadir))
        if result.returncode:
            raise RuntimeError(f"PostgreSQL for make chaos did not stop: {result.stderr.strip()}")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            # As root in a clone the postgres OS user cannot enter, datadir links to the real place
            # (deploy/services.sh, local_postgres_place): both go, so the next run starts afresh.
            shutil.rmtree(self.datadir.resolve(), ignore_errors=True)
            if self.datadir.is_symlink():
                self.datadir.unlink()


class Redis:
    """redis-server on `port` that keeps nothing (no RDB, no AOF): a restart starts empty."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"
        # redis-server writes its process title over its environment, so the run's mark cannot find
        # it: its pid is kept here for the next run to stop it if this one was killed.
        self.pidfile = log.parent / "redis.pid"

    def stop_leftover(self) -> bool:
        """Stop a redis-server an earlier run started and never stopped (that run was killed)."""
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return False
        self.pidfile.unlink(missing_ok=True)
        if cmdline(pid).startswith(f"redis-server 127.0.0.1:{self.port}"):
            os.kill(pid, signal.SIGKILL)
            return True
        return False

    def start(self) -> None:
        out = open(self.log, "ab")
        # Its own session: a Ctrl-C in the terminal reaches the runner, which stops it in order.
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.log.parent)],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(str(self.proc.pid))
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on {self.port} did not answer: see {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pidfile.unlink(missing_ok=True)


class FakeApi:
    """fakes/anthropic.py in its process mode on 127.0.0.1:`port`: the seeded mix of
    answers, each in `journal` (fsynced) before it is written. A process of its own, not a thread of
    the run: its answers then arrive at the pace of a server, not of whatever the run is doing."""

    def __init__(self, port: int, seed: int, journal: Path, log: Path, env: dict[str, str]) -> None:
        self.port, self.seed, self.journal, self.log, self.env = port, seed, journal, log, env
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.journal.unlink(missing_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakes.anthropic", str(self.port), "--mix", str(self.seed),
             "--journal", str(self.journal)],
            cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        import socket

        for _ in range(100):
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the fake Anthropic API on {self.port} did not start: see {self.log}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def supervisor(env: dict[str, str], var: Path):
    """deploy/supervisord.conf with its var/ paths in `var` (socket, pid file, logs): make up's
    supervisord, socket and logs are never touched."""
    from bench.footprint import Supervisor

    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    return Supervisor(env, tmp=var)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cmdline(pid: int) -> str:
    return processes.cmdline(pid)
