"""Helpers for deploy/up.sh (`make up`), run with the project's .venv python.

    envfile             create .env.local with random secrets, or add the secrets it lacks
    exports             shell `export` lines for .env.local (variables already set win, as in settings)
    settings            the effective settings up.sh needs, as shell assignments (a bad value: one line, exit 2)
    redis-ping URL      exit 0 if Redis answers PING, 3 if nothing listens there, 4 on any other error
    ports-free NAME=PORT ...   exit 1 (with one line each) if another program listens on 127.0.0.1:PORT
    wait SECONDS        wait until web, Flower and every supervisord program are up
"""
from __future__ import annotations

import base64
import os
import re
import secrets
import shlex
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env.local"
CONF = ROOT / "deploy" / "supervisord.conf"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALNUM = string.ascii_letters + string.digits


def _random(length: int) -> str:
    # Letters and digits only: safe unquoted in .env files, shells and URLs.
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _generated() -> dict[str, tuple[str, str]]:
    return {
        "SECRET_KEY": (_random(50), "Django's signing key: keep it secret, keep it stable"),
        "CLAY_WEBHOOK_SECRET": (_random(40), "what a webhook caller sends in the X-Clay-Secret header"),
        "FLOWER_BASIC_AUTH": (f"admin:{_random(24)}", "Flower's login, user:password"),
    }


def _read_env_file() -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None}


def cmd_envfile() -> int:
    if not ENV_FILE.exists():
        lines = [
            f"# Written by `make up` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Every variable is described in",
            "# .env.example. Variables set in the real environment win over this file.",
            "# After a change: make down && make up",
            "",
        ]
        for name, (value, comment) in _generated().items():
            lines += [f"# {comment}", f"{name}={value}"]
        lines += [
            "# No real AI or email calls while true",
            "MOCK_MODE=true",
            "DEBUG=false",
            "# Unset: SQLite under var/. For PostgreSQL: postgres://user:password@host:5432/dbname",
            "# DATABASE_URL=",
            "# REDIS_URL=redis://127.0.0.1:6379/0",
            "",
        ]
        old_umask = os.umask(0o077)
        try:
            fd = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        finally:
            os.umask(old_umask)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines))
        print("created .env.local with random secrets (mode 600)")
        return 0

    # An existing file is never rewritten; secrets it lacks (and the environment does not give) are appended.
    present = _read_env_file()
    missing = {name: item for name, item in _generated().items() if not present.get(name) and not os.environ.get(name)}
    if missing:
        with ENV_FILE.open("a") as handle:
            handle.write(f"\n# Added by `make up` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n")
            for name, (value, comment) in missing.items():
                handle.write(f"# {comment}\n{name}={value}\n")
        print(f".env.local: added {', '.join(missing)} (it had none)")
    if ENV_FILE.stat().st_mode & 0o077:
        print("warning: .env.local holds secrets but others can read it: chmod 600 .env.local", file=sys.stderr)
    return 0


def cmd_exports() -> int:
    if not ENV_FILE.exists():
        return 0
    for name, value in _read_env_file().items():
        if not _NAME.match(name):
            print(f"echo {shlex.quote(f'.env.local: ignoring {name!r} (not a variable name)')} >&2")
            continue
        if name in os.environ:
            continue  # the real environment wins, as in resilience/settings.py
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def cmd_settings() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    from resilience.env import env_int, load_settings_or_exit

    load_settings_or_exit()
    # Read by supervisord.conf only (celery --max-memory-per-child), so checked here.
    load_settings_or_exit(lambda: env_int("WORKER_MAX_MEMORY_PER_CHILD_KB", 1048576, minimum=10240))
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database = f"SQLite {os.path.relpath(db['NAME'], ROOT)}"
    else:
        database = f"PostgreSQL {db['NAME']} on {db['HOST'] or 'localhost'}:{db['PORT']}"
    values = {
        "S_REDIS_URL": settings.REDIS_URL,
        "S_REDIS_URL_SHOWN": _hide_password(settings.REDIS_URL),
        "S_WEB_PORT": settings.WEB_PORT,
        "S_FLOWER_PORT": settings.FLOWER_PORT,
        "S_TASK_TIME_LIMIT": settings.CELERY_TASK_TIME_LIMIT,
        "S_DATABASE": database,
        "S_VAR_DIR": os.path.relpath(settings.VAR_DIR, ROOT),
        "S_MOCK_MODE": "true" if settings.MOCK_MODE else "false",
        "S_DEBUG": "true" if settings.DEBUG else "false",
        "S_WEBHOOK_SECRET": settings.CLAY_WEBHOOK_SECRET,
    }
    for name, value in values.items():
        print(f"{name}={shlex.quote(str(value))}")
    return 0


def cmd_redis_ping(url: str) -> int:
    import socket
    from urllib.parse import urlsplit

    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
        return 0
    except Exception as exc:  # refused, auth, TLS, wrong protocol ...
        error = f"{type(exc).__name__}: {exc}"
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 6379), timeout=3).close()
    except OSError:
        return 3  # nothing listens there
    print(f"Redis at {_hide_password(url)} answers but not as expected: {error}", file=sys.stderr)
    return 4


def cmd_ports_free(pairs: list[str]) -> int:
    import errno
    import socket

    busy = 0
    for pair in pairs:
        name, _, port = pair.partition("=")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and Flower do
            try:
                sock.bind(("127.0.0.1", int(port)))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                print(f"port {port} on 127.0.0.1 is taken by another program: stop it, or set {name} "
                      "to a free port in .env.local", file=sys.stderr)
                busy += 1
    return 1 if busy else 0


def http_status(url: str, auth: str | None = None) -> int:
    """The HTTP status of a GET, 0 when nothing answers."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception:
        return 0


def _program_states() -> dict[str, str]:
    ctl = [str(ROOT / ".venv" / "bin" / "supervisorctl"), "-c", str(CONF), "status"]
    output = subprocess.run(ctl, capture_output=True, text=True, timeout=15).stdout
    states = {}
    for line in output.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            states[parts[0]] = parts[1] + (f" {parts[2]}" if len(parts) > 2 and parts[1] != "RUNNING" else "")
    return states


def cmd_wait(seconds: float) -> int:
    web_port = os.environ.get("WEB_PORT", "8000")
    flower_port = os.environ.get("FLOWER_PORT", "5555")
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH", "").split(",")[0] or None
    web_url = f"http://127.0.0.1:{web_port}/healthz"
    flower_url = f"http://127.0.0.1:{flower_port}/healthcheck"
    deadline = time.monotonic() + seconds
    problems: list[str] = []
    shown = ""
    while True:
        problems = []
        states = _program_states()
        if not states:
            problems.append("supervisord does not answer")
        waiting = sorted(name for name, state in states.items() if not state.startswith("RUNNING"))
        fatal = [name for name in waiting if states[name].startswith("FATAL")]
        for name in waiting:
            problems.append(f"{name}: {states[name]}; log: var/log/{name.split(':')[-1]}.log")
        if (status := http_status(web_url)) != 200:
            problems.append(f"web: GET {web_url} -> {status or 'no answer'}")
        if (status := http_status(flower_url, flower_auth)) != 200:
            problems.append(f"flower: GET {flower_url} -> {status or 'no answer'}")
        if not problems:
            if shown:
                print(file=sys.stderr)
            return 0
        if fatal or time.monotonic() >= deadline:
            break
        line = f"  waiting: {len(states) - len(waiting)}/{len(states)} programs running"
        if line != shown:
            print(("\n" if shown else "") + line, end="", file=sys.stderr, flush=True)
            shown = line
        else:
            print(".", end="", file=sys.stderr, flush=True)
        time.sleep(1)
    print(file=sys.stderr)
    print(f"not ready after {seconds:.0f} s:" if not fatal else "a program failed to start:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "envfile":
        return cmd_envfile()
    if command == "exports":
        return cmd_exports()
    if command == "settings":
        return cmd_settings()
    if command == "redis-ping" and len(args) == 1:
        return cmd_redis_ping(args[0])
    if command == "ports-free" and args:
        return cmd_ports_free(args)
    if command == "wait" and len(args) == 1:
        return cmd_wait(float(args[0]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
