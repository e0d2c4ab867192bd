"""What `make test` uses of its own, derived from the checkout's path: two checkouts on one machine, or the
running system beside the tests, never share a test database, a Redis db (which the tests empty) or the
throwaway cluster's port. TEST_DATABASE_URL, TEST_REDIS_URL and TEST_LOCAL_POSTGRES_PORT choose others.

Standard library only: deploy/run-tests.sh asks it before anything is installed or configured:
    python -m tests.checkout                 prints: database-name redis-db throwaway-port
    python -m tests.checkout database-url URL  prints URL naming this checkout's database
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

CHECKOUT = Path(__file__).resolve().parent.parent
# Redis's default 16 databases; 0 is REDIS_URL's default, the running system's.
REDIS_DATABASES = 16
# Below Linux's ephemeral ports (32768-60999) and far from the ports a person picks for PostgreSQL (5432,
# LOCAL_POSTGRES_PORT's 54329 and its neighbours).
PORT_BASE, PORT_SPAN = 27000, 1000


def _digest(checkout: Path) -> int:
    return int(hashlib.sha256(str(checkout).encode()).hexdigest()[:8], 16)


def _system_setting(checkout: Path, name: str) -> str | None:
    """The running system's value of a setting (its .env.local), read without any package."""
    try:
        lines = (checkout / ".env.local").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return None


def database_name(checkout: Path = CHECKOUT) -> str:
    """The name in the test URL; pytest-django creates and drops test_<name>."""
    return f"resilience_{_digest(checkout):08x}"


def redis_db(checkout: Path = CHECKOUT) -> int:
    """A db from 1 to 15 that is not the running system's (REDIS_URL's, 0 by default)."""
    taken = {0}
    system = _system_setting(checkout, "REDIS_URL")
    if system and urlsplit(system).path.strip("/").isdigit():
        taken.add(int(urlsplit(system).path.strip("/")))
    free = [db for db in range(REDIS_DATABASES) if db not in taken]
    return free[_digest(checkout) % len(free)]


def throwaway_port(checkout: Path = CHECKOUT) -> int:
    """The throwaway cluster's port, never the project-local cluster's (LOCAL_POSTGRES_PORT, 54329)."""
    port = PORT_BASE + _digest(checkout) % PORT_SPAN
    local = _system_setting(checkout, "LOCAL_POSTGRES_PORT")
    return port + 1 if local == str(port) else port


def redis_url(checkout: Path = CHECKOUT) -> str:
    return f"redis://127.0.0.1:6379/{redis_db(checkout)}"


def database_url(server: str, checkout: Path = CHECKOUT) -> str:
    """`server`'s URL (its user, password, host and port) naming this checkout's database."""
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path="/" + database_name(checkout)))


def main(argv: list[str]) -> int:
    if not argv:
        print(database_name(), redis_db(), throwaway_port())
        return 0
    if argv[0] == "database-url" and len(argv) == 2:
        print(database_url(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
