"""make bench, the peers: Procrastinate and PgQueuer (pinned in bench/requirements-peers.txt) measured in
the speed section's rounds beside plain Celery and the ledger path, with the same no-op job (one INCR),
the same N jobs queued at once and drained, the same one-at-a-time p50 enqueue->start, the same CPU
accounting (bench/speed.py CpuMeter: the worker process, the submitting side's enqueue call, the
PostgreSQL backends of the peer's database).

They run from a bench-only virtualenv (var/bench-venv, made on first use: `python -m venv` and pip with
the pinned file), never from the project's .venv, so the project's requirements never carry them. Each
round gives each peer a new database of its own (the bench database's name + "_" + the peer), so its
schema is installed fresh and no earlier round's rows slow it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "bench" / "requirements-peers.txt"
VENV = Path(os.environ.get("BENCH_PEERS_VENV", ROOT / "var" / "bench-venv"))
PEERS = ("procrastinate", "pgqueuer")
READY = "resilience:bench:peer-ready"
COUNTER = "resilience:bench:peer-done"


class PeersUnavailable(Exception):
    """The bench venv could not be made (no package index reachable, say): the reason, in one line."""


def venv_python(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> Path:
    """The bench venv's Python, the venv made or brought up to the pinned file first. A copy of the
    file inside the venv records what it holds, so a changed pin reinstalls once."""
    python, stamp = venv / "bin" / "python", venv / "requirements-peers.txt"
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True,
                       capture_output=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PeersUnavailable(f"could not build {venv} from {requirements.name}: {tail[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise PeersUnavailable(f"could not build {venv}: {exc}") from exc
    stamp.write_text(wanted)
    return python


def peer_database(bench_db: str, peer: str) -> str:
    url = urlsplit(bench_db)
    return urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_{peer}"))


def _maintenance(url: str, *statements: str) -> None:
    import psycopg2

    parts = urlsplit(url)
    conn = psycopg2.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                            password=parts.password, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement.format(name=parts.path.lstrip("/")))
    conn.close()


def fresh_database(url: str) -> None:
    _maintenance(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', 'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    _maintenance(url, 'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_backends(dbname: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [dbname])
        return [row[0] for row in cur.fetchall()]


def _answer(proc: subprocess.Popen, what: str) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"peer bench: the {what} side ended without an answer (exit {proc.poll()})")
    return json.loads(line)


def peer_round(peer: str, procs_factory, python: Path, bench_db: str, redis_url: str, jobs: int,
               samples: int) -> tuple[float, float, dict[str, float]]:
    """One peer's round: (jobs/s draining `jobs` queued at once, p50 enqueue->start ms of `samples` jobs
    one at a time, CPU ms per job per part)."""
    import statistics

    import redis

    from bench.speed import CPU_PARTS, CpuMeter
    from workers.processes import child_pids, cpu_seconds

    dsn = peer_database(bench_db, peer)
    fresh_database(dsn)
    client = redis.Redis.from_url(redis_url)
    client.delete(READY, COUNTER)
    procs = procs_factory()
    procs.env.update(PEER_DSN=dsn, REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    submitter = None
    try:
        worker = procs.start(f"peer-{peer}", [str(python), "-m", "bench.peer_jobs", "worker", peer])
        deadline = time.monotonic() + 60
        while client.get(READY) is None:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"peer bench: {peer}'s worker did not start (logs in {procs.log_dir})")
            time.sleep(0.05)
        submitter = subprocess.Popen([str(python), "-m", "bench.peer_jobs", "enqueue", peer], cwd=ROOT,
                                     env=procs.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=open(procs.log_dir / f"submit-{peer}.log", "ab"))
        if submitter.stdout.readline().strip() != "ready":
            raise SystemExit(f"peer bench: {peer}'s submitting side did not start")
        dbname = urlsplit(dsn).path.lstrip("/")

        def read() -> dict[str, dict[int, float]]:
            return {"worker main process": {worker.pid: cpu_seconds(worker.pid, with_reaped_children=True)},
                    "worker pool children": {c: cpu_seconds(c) for c in child_pids(worker.pid)},
                    "dispatcher / publishing": {},
                    "PostgreSQL backends": {pid: cpu_seconds(pid) for pid in database_backends(dbname)}}

        before = read()
        submitter.stdin.write(f"drain {jobs}\n")
        submitter.stdin.flush()
        drained = _answer(submitter, "submitting")
        cpu = CpuMeter.per_job_ms(before, read(), jobs, drained["publish_cpu"])
        assert set(cpu) == set(CPU_PARTS)
        submitter.stdin.write(f"samples {samples}\n")
        submitter.stdin.flush()
        waits = _answer(submitter, "submitting")["waits_ms"]
        ran = int(client.get(COUNTER) or 0)
        if ran != jobs + samples:
            raise SystemExit(f"peer bench: {peer} ran the no-op {ran} times for {jobs + samples} jobs")
    finally:
        if submitter:
            submitter.stdin.close()
            submitter.wait(timeout=30)
        procs.stop()
    return jobs / drained["seconds"], statistics.median(waits), cpu
