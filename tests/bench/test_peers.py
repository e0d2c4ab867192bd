"""make bench's peers (bench/peers.py): one bounded real round of Procrastinate and of PgQueuer from the
bench venv, against the test PostgreSQL and Redis, with a tiny N. Skipped, saying why, where the venv
cannot be built (no package index)."""
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from bench import peers
from bench.speed import CPU_PARTS
from workers.processes import stop_process_groups

pytestmark = pytest.mark.django_db(transaction=True)


class Procs:
    """What peer_round needs of bench/run.py's Processes (which sets the bench's environment on import)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.env, self.procs = log_dir, dict(os.environ), []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(args, cwd=peers.ROOT, env=self.env, stdout=open(self.log_dir / f"{name}.log", "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        stop_process_groups(self.procs, timeout=20)


@pytest.fixture(scope="module")
def python():
    try:
        return peers.venv_python()
    except peers.PeersUnavailable as exc:
        pytest.skip(f"the bench venv cannot be built here: {exc}")


def test_venv_python_names_the_reason_it_cannot_build(tmp_path):
    pins = tmp_path / "requirements-peers.txt"
    pins.write_text("no-such-package-resilience-bench==0.0.0\n")
    with pytest.raises(peers.PeersUnavailable, match="could not build"):
        peers.venv_python(tmp_path / "venv", pins)


@pytest.mark.parametrize("peer", peers.PEERS)
def test_one_tiny_round_of_each_peer(python, peer, tmp_path, redis_client):
    db = connection.settings_dict
    # With the role's password when it has one: make test may run on a cluster that wants it (scram).
    login = quote(db["USER"] or "postgres") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    dsn = f"postgres://{login}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    try:
        throughput, p50, cpu = peers.peer_round(peer, lambda: Procs(tmp_path), python, dsn, settings.REDIS_URL,
                                                jobs=20, samples=3)
    finally:
        peers.drop_database(peers.peer_database(dsn, peer))
    assert throughput > 0 and p50 > 0
    assert set(cpu) == set(CPU_PARTS) and cpu["worker main process"] > 0, cpu
    assert int(redis_client.get(peers.COUNTER)) == 23
