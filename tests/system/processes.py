"""Real worker and dispatcher processes for system tests, sharing the test database and Redis db."""
from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psutil
from django.db import connection

from fakes.loopback import free_port
from workers.processes import child_pids, stop_process_groups

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

    def configure(self, **env: str) -> None:
        """Environment for the processes started from now on (e.g. JOB_LEASE_SECONDS, TEST_REDIS_URL)."""
        self.env.update(env)

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, queue: str, pool: str, concurrency: int, *, include: str = "") -> subprocess.Popen:
        """include: a module the worker imports at start (a test's tasks or stand-ins), as --include."""
        return self.start(f"{queue}@{pool}", [
            sys.executable, "-m", "celery", "-A", "resilience", "worker", "-Q", queue, "-c", str(concurrency),
            "-n", f"{queue}@{pool}.%h", "--without-gossip", "--without-mingle", "-l", "info",
            *(["--include", include] if include else []),
        ])

    def dispatcher(self, pool: str) -> subprocess.Popen:
        return self.start(f"dispatcher-{pool}", [sys.executable, "manage.py", "run_dispatcher"])

    def wait_ready(self, name: str, timeout: float = 30) -> None:
        """Until a celery worker logs that it consumes (its log says 'ready.')."""
        log = self.log_dir / f"{name}.log"
        if not wait_for(lambda: " ready." in log.read_text(errors="replace"), timeout):
            raise AssertionError(f"{name} did not become ready in {timeout}s\n{self.logs()}")

    def stop_all(self, timeout: float = 15) -> None:
        stop_process_groups(self.procs.values(), timeout)

    # --- inspecting and hurting processes (failure tests) ---

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the process itself (not its group), as `kill -9 <pid>` would."""
        self.procs[name].send_signal(sig)

    def wait_exit(self, name: str, timeout: float) -> int | None:
        """The exit code, or None if it still runs after `timeout`."""
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def pool_children(self, name: str) -> list[int]:
        """The prefork pool children of a celery worker's main process."""
        return child_pids(self.pid(name))

    def log_text(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def leader(self, candidates: list[str]) -> str | None:
        """The one live dispatcher candidate whose log says it leads (needs LOG_LEVEL=INFO); None until
        exactly one does."""
        marker = "this process is now the leader"
        found = [(self.log_text(n).rfind(marker), n) for n in candidates if self.alive(n)]
        found = [(pos, n) for pos, n in found if pos >= 0]
        return found[0][1] if len(found) == 1 else None

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


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class RedisServer:
    """A private, non-persistent redis-server a test may stop and start again on the same port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        import redis

        log = open(self.log_dir / "redis-server.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)

        def answers() -> bool:
            try:
                return client.ping()
            except redis.RedisError:
                return False

        if not wait_for(answers, timeout, interval=0.05):
            raise AssertionError(f"redis-server on port {self.port} did not start")
        client.close()

    def stop(self) -> None:
        """SIGTERM: without persistence it keeps nothing, so every queued message is lost."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def database_url(proxy: TcpProxy | None = None, *, user: str | None = None, password: str | None = None) -> str:
    """The test database's URL, through `proxy` if given, for TEST_DATABASE_URL of processes; as `user` with
    `password` if given (a role of a test's own)."""
    db = connection.settings_dict
    user, password = (user, password) if user else (db["USER"], db["PASSWORD"])
    credentials = quote(user) + (f":{quote(password)}" if password else "")
    where = f"127.0.0.1:{proxy.port}" if proxy else f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{where}/{db['NAME']}"


def database_proxy() -> TcpProxy:
    """A TcpProxy in front of the test database's PostgreSQL (not started)."""
    db = connection.settings_dict
    return TcpProxy(int(db["PORT"] or 5432), db["HOST"] or "127.0.0.1")


class TcpProxy:
    """A loopback TCP forwarder that a test can cut (close every connection and refuse new ones)
    and restore, to show the processes behind it an outage of the server in front; or freeze (stop
    forwarding and accepting, every socket left open) and thaw, as a host that vanished or a network
    that silently drops everything would look, except that this kernel still acknowledges packets,
    so TCP keepalives and tcp_user_timeout notice nothing."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.connections = 0  # accepted since start, for tests to check traffic went through
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._frozen = threading.Event()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy-accept")
        self._thread.start()

    def cut(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)
        if self._thread is not None:
            self._thread.join(5)

    restore = start

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.2)
        while self._listener is listener:
            if self._frozen.is_set():  # connections wait in the listen backlog, unanswered
                time.sleep(0.1)
                continue
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by cut()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True, name="proxy-pump").start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        client.settimeout(None)
        upstream.settimeout(None)
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                if self._frozen.is_set():
                    if client.fileno() < 0 or upstream.fileno() < 0:
                        return  # cut while frozen
                    time.sleep(0.1)
                    continue
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                if client.fileno() < 0 or upstream.fileno() < 0:
                    return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            _close(client)
            _close(upstream)
            with self._lock:
                if (client, upstream) in self._pairs:
                    self._pairs.remove((client, upstream))


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
