"""`make test` beside a running system or another checkout: its database, Redis db and throwaway cluster's
port are the checkout's own (tests/checkout.py), and given URLs still win."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests import checkout

ROOT = Path(__file__).resolve().parents[2]


def test_two_checkouts_get_a_database_a_redis_db_and_a_port_of_their_own(tmp_path):
    one, two = tmp_path / "one" / "resilience", tmp_path / "two" / "resilience"
    assert checkout.database_name(one) != checkout.database_name(two)
    assert checkout.database_name(one).startswith("resilience_")
    assert checkout.database_name(one) == checkout.database_name(one)  # the same every run
    assert checkout.database_url("postgres://u:p%40w@db.example:6543/x?sslmode=require", one) == \
        f"postgres://u:p%40w@db.example:6543/{checkout.database_name(one)}?sslmode=require"
    for path in (one, two, ROOT):
        assert 1 <= checkout.redis_db(path) <= 15  # never 0, the running system's default
        assert checkout.throwaway_port(path) not in (5432, 54329)  # the machine's, LOCAL_POSTGRES_PORT's default


def test_the_running_systems_redis_db_and_local_port_are_never_the_tests(tmp_path):
    project = tmp_path / "resilience"
    project.mkdir()
    db, port = checkout.redis_db(project), checkout.throwaway_port(project)
    (project / ".env.local").write_text(f"REDIS_URL=redis://127.0.0.1:6379/{db}\nLOCAL_POSTGRES_PORT={port}\n")
    assert checkout.redis_db(project) not in (0, db)
    assert checkout.throwaway_port(project) != port


def _settings(env: dict[str, str]) -> list[str]:
    code = ("import tests.settings as s; print(s.DATABASES['default']['HOST'], s.DATABASES['default']['NAME']); "
            "print(s.REDIS_URL)")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")} | env
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout.split("\n")


def test_the_suites_settings_use_the_checkouts_own_unless_given():
    assert _settings({}) == [f"127.0.0.1 {checkout.database_name()}", checkout.redis_url(), ""]
    assert _settings({"TEST_DATABASE_URL": "postgres://me@db.example:5432/mine",
                      "TEST_REDIS_URL": "redis://127.0.0.1:6379/12"}) == ["db.example mine", "redis://127.0.0.1:6379/12", ""]


def test_make_test_says_which_database_and_redis_db_it_uses_and_they_are_the_checkouts():
    """run-tests.sh with no TEST_DATABASE_URL / TEST_REDIS_URL, on the PostgreSQL this run uses (it lets the
    test role in: the fast path), collecting only: the line names this checkout's own."""
    client = redis.Redis.from_url(checkout.redis_url(), socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379, where make test's own Redis db would be")
    finally:
        client.close()
    server = urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres").geturl()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}
    env["TEST_MACHINE_DATABASE_URL"] = server
    result = subprocess.run(["bash", "deploy/run-tests.sh", "--co", "-q", "-p", "no:cacheprovider", "tests/test_env.py"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert f"make test: database test_{checkout.database_name()}, Redis {checkout.redis_url()} " \
           "(both emptied by the tests)" in result.stderr.splitlines(), result.stderr
