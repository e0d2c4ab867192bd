"""Helpers for deploy/up.sh (`make up`), run with the project's .venv python.

    envfile             create .env.local with random secrets and a project-local DATABASE_URL, or add
                        those it lacks (and the environment does not give)
    remember            write the settings given in the environment into .env.local (make up only), once
                        the settings module accepts them (refused: one line, the file unchanged); the
                        values replaced are kept in .env.local.previous
    exports [FILE]      shell `export` lines for .env.local or FILE (variables already set win, as in settings)
    settings            the effective settings up.sh needs, as shell assignments (a bad value: one line, exit 2)
    redis-ping URL      exit 0 if Redis answers PING, 3 if nothing listens there, 4 on any other error
    ports-free NAME=PORT ...   exit 1 (with one line each) if another program listens on 127.0.0.1:PORT
    wait SECONDS        wait until web, Flower and every supervisord program are up
    database-url PORT   a new URL for a project-local PostgreSQL on 127.0.0.1:PORT, random password
    local-db DATADIR URL [--superuser]   in the project-local cluster of DATADIR: the URL's role with its
                        password, and its database (created when missing)
    pg-probe URL        exit 0 if URL's role gets into PostgreSQL without more and may create databases,
                        3 if nothing answers there, 4 otherwise; the reason on stdout
    db-ping URL         exit 0 if URL's database lets its role in, 3 if nothing answers there, 4 otherwise
    admin-login         how to log in to the admin of the current database (one line)
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
# The scripts run this from the project root, whose .env.local it is (tests run it from another).
ENV_FILE = Path.cwd() / ".env.local"
CONF = ROOT / "deploy" / "supervisord.conf"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALNUM = string.ascii_letters + string.digits


def _random(length: int) -> str:
    # Letters and digits only: safe unquoted in .env files, shells and URLs.
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


LOCAL_POSTGRES_PORT = "54329"
# Settings .env.example lists that `make up` does not remember: the file to read, make test's own
# (environment only), and the first admin's, which are used once.
NOT_REMEMBERED = {"ENV_FILE", "DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"}


def database_url(port: str | int, user: str = "resilience", name: str = "resilience") -> str:
    return f"postgres://{user}:{_random(32)}@127.0.0.1:{port}/{name}"


def _generated() -> dict[str, tuple[str, str]]:
    port = os.environ.get("LOCAL_POSTGRES_PORT") or LOCAL_POSTGRES_PORT
    return {
        "SECRET_KEY": (_random(50), "Django's signing key: keep it secret, keep it stable"),
        "CLAY_WEBHOOK_SECRET": (_random(40), "what a webhook caller sends in the X-Clay-Secret header"),
        "FLOWER_BASIC_AUTH": (f"admin:{_random(24)}", "Flower's login, user:password"),
        "DATABASE_URL": (database_url(port), "The project-local PostgreSQL that make up starts (data in var/postgres); "
                         "or your own: postgres://user:password@host:5432/dbname"),
    }


def _read_env_file(path: Path | None = None) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path or ENV_FILE).items() if v is not None}


def setting_names() -> list[str]:
    """Every setting .env.example lists (its `# NAME=` lines), in its order."""
    names = re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), flags=re.M)
    return list(dict.fromkeys(names))


def _dotenv_value(value: str) -> str:
    # Bare when that reads back the same; otherwise double quotes, whose escapes python-dotenv decodes.
    if re.fullmatch(r"[A-Za-z0-9_@:/.,%+=?&*~^!-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def set_env_values(values: dict[str, str], note: str, path: Path | None = None) -> None:
    """Set NAME=value in the env file: in place of the line that sets it now (or of its commented-out
    template line), else appended under `note`. The file keeps its mode; nothing else changes."""
    import io

    from dotenv import dotenv_values

    path = path or ENV_FILE
    lines = path.read_text().splitlines() if path.exists() else []
    appended: list[str] = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"{name}: a value with a line break cannot go into {path.name}")
        line = f"{name}={_dotenv_value(value)}"
        if dotenv_values(stream=io.StringIO(line)).get(name) != value:
            raise ValueError(f"{name}: this value does not survive a round trip through {path.name}")
        setting = re.compile(rf"^\s*(export\s+)?{name}\s*=")
        template = re.compile(rf"^#\s*{name}=\S*$")  # `# NAME=` or `# NAME=default`
        found = [i for i, text in enumerate(lines) if setting.match(text)] or \
            [i for i, text in enumerate(lines) if template.match(text)]
        if found:
            lines[found[-1]] = line  # the last one is the one that counts
        else:
            appended.append(line)
    if appended:
        lines += ["", f"# {note} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", *appended]
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def cmd_envfile() -> int:
    if not ENV_FILE.exists():
        lines = [
            f"# Written by `make up` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Every variable is described in",
            "# .env.example. Variables set in the real environment win over this file.",
            "# After a change: make down && make up",
            "",
        ]
        for name, (value, comment) in _generated().items():
            if not os.environ.get(name):
                lines += [f"# {comment}", f"{name}={value}"]
        lines += [
            "# No real AI or email calls while true",
            "MOCK_MODE=true",
            "DEBUG=false",
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


def settings_error(extra: dict[str, str], env_file: Path | None = None) -> str | None:
    """The one-line configuration error that start-up would stop with, given the environment (with `extra`
    over it) and the env file, or None when the settings are accepted. The real settings module decides, in
    a process of its own (this one may have loaded other settings), with the same checks as `settings`."""
    env = {**os.environ, **extra, "ENV_FILE": str(env_file or ENV_FILE), "DJANGO_SETTINGS_MODULE": "resilience.settings"}
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "settings"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return next((line for line in reversed(lines) if line.startswith("configuration error:")),
                lines[-1] if lines else f"configuration error: the settings do not load (exit {result.returncode})")


def keep_previous(values: dict[str, str], path: Path | None = None) -> Path:
    """Append the values about to be replaced to .env.local.previous (mode 600), dated, as lines that can be
    copied back: a mistyped or regretted secret is never lost."""
    path = path or ENV_FILE.with_name(ENV_FILE.name + ".previous")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # also when an older file was more open
    with os.fdopen(fd, "a") as handle:
        handle.write(f"# Replaced in {ENV_FILE.name} by `make up` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
                     f"to bring a value back, copy its line into {ENV_FILE.name}\n")
        handle.write("".join(f"{name}={_dotenv_value(value)}\n" for name, value in values.items()))
    return path


def cmd_remember() -> int:
    """Settings given in the environment go into .env.local, so that every later command (another shell's
    manage.py, a restarted program) uses what `make up` was given. Checked first: a value start-up would
    refuse is not written (the file stays as it was); a value replaced is kept in .env.local.previous."""
    present = _read_env_file()
    given = {name: os.environ[name] for name in setting_names()
             if name not in NOT_REMEMBERED and not name.startswith("TEST_")
             and os.environ.get(name) and os.environ[name] != present.get(name)}
    if not given:
        return 0
    # Links in mail already sent are signed with the effective EMAIL_SIGNING_KEY, by default SECRET_KEY: a
    # new SECRET_KEY would make every open, click and unsubscribe link answer 404. The old key keeps signing
    # them unless EMAIL_SIGNING_KEY was chosen. A key under 32 characters never started the system: no link.
    old_key = present.get("SECRET_KEY", "")
    pinned = {}
    if "SECRET_KEY" in given and len(old_key) >= 32 and not os.environ.get("EMAIL_SIGNING_KEY") \
            and not present.get("EMAIL_SIGNING_KEY"):
        pinned["EMAIL_SIGNING_KEY"] = old_key
    if error := settings_error(pinned):
        print(f"{error} ({ENV_FILE.name} not changed)", file=sys.stderr)
        return 1
    values = {**given, **pinned}
    replaced = {name: present[name] for name in values if present.get(name)}
    try:
        if replaced:  # before the file changes: never a moment when the old value is nowhere
            previous = keep_previous(replaced)
        set_env_values(values, "Given in the environment of `make up`")
    except ValueError as exc:
        print(f"{ENV_FILE.name}: not written: {exc}", file=sys.stderr)
        return 1
    print(f"{ENV_FILE.name}: now {', '.join(given)} as given in the environment (every later command uses them)")
    if replaced:
        print(f"{ENV_FILE.name}: the values replaced ({', '.join(replaced)}) are kept in {previous.name} (mode 600)")
    if pinned:
        print(f"{ENV_FILE.name}: EMAIL_SIGNING_KEY set to the old SECRET_KEY, so links in mail already sent keep "
              "working (docs/security.md, Rotating SECRET_KEY)")
    return 0


def cmd_exports(path: Path | None = None) -> int:
    path = path or ENV_FILE
    if not path.exists():
        return 0
    for name, value in _read_env_file(path).items():
        if not _NAME.match(name):
            print(f"echo {shlex.quote(f'.env.local: ignoring {name!r} (not a variable name)')} >&2")
            continue
        if name in os.environ:
            continue  # the real environment wins, as in resilience/settings.py
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _check_local_postgres_home() -> None:
    from resilience.env import ConfigError

    home = os.environ.get("LOCAL_POSTGRES_HOME", "")
    if home and not os.path.isabs(home):
        raise ConfigError(f"LOCAL_POSTGRES_HOME must be an absolute path (got {home!r})")


def cmd_settings() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    from resilience.env import env_int, load_settings_or_exit

    load_settings_or_exit()
    # Read by supervisord.conf only (celery --max-memory-per-child), so checked here.
    load_settings_or_exit(lambda: env_int("WORKER_MAX_MEMORY_PER_CHILD_KB", 1048576, minimum=10240))
    # Read by deploy/services.sh only (where the project-local cluster's data lives), so checked here.
    load_settings_or_exit(_check_local_postgres_home)
    from django.conf import settings

    db = settings.DATABASES["default"]
    database = f"PostgreSQL {db['NAME']} on {db['HOST'] or 'localhost'}:{db['PORT']}"
    local_port = os.environ.get("LOCAL_POSTGRES_PORT") or LOCAL_POSTGRES_PORT
    values = {
        "S_DATABASE_LOCAL": "1" if db["HOST"] in ("127.0.0.1", "localhost") and db["PORT"] == local_port else "",
        "S_DATABASE_PORT": db["PORT"],
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


def _connect(url: str, **overrides):
    """A psycopg2 connection to URL's database (overrides: host, user, dbname ...), 5 s to connect."""
    from urllib.parse import unquote, urlsplit

    import psycopg2

    parts = urlsplit(url)
    params = {
        "host": parts.hostname or "", "port": parts.port or 5432, "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""), "dbname": unquote(parts.path.lstrip("/")), "connect_timeout": 5,
    }
    params.update(overrides)
    return psycopg2.connect(**{k: v for k, v in params.items() if v != ""})


def cmd_local_db(datadir: str, url: str, superuser: bool) -> int:
    """Make the project-local cluster match URL: its role (password included) and its database. Done over
    the cluster's unix socket as its bootstrap superuser, which the socket trusts (only the cluster's
    owner reaches it); then URL itself must get in over TCP."""
    from urllib.parse import unquote, urlsplit

    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    name = unquote(parts.path.lstrip("/"))
    if not (user and password and name):
        print(f"{_hide_password(url)} needs a user, a password and a database name", file=sys.stderr)
        return 1
    rights = sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER CREATEDB")
    try:
        # The real path: var/postgres may link to where the cluster is, and its socket path is limited in length.
        admin = _connect(url, host=os.path.realpath(datadir), user="postgres", password="", dbname="postgres")
        admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user])
                verb = sql.SQL("ALTER" if cursor.fetchone() else "CREATE")
                cursor.execute(sql.SQL("{} ROLE {} LOGIN {} PASSWORD %s").format(verb, sql.Identifier(user), rights),
                               [password])
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if not cursor.fetchone():
                    cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                               sql.Identifier(user)))
        finally:
            admin.close()
        _connect(url).close()
    except psycopg2.Error as exc:
        print(f"the project-local PostgreSQL in {datadir}: {str(exc).strip()}", file=sys.stderr)
        return 1
    return 0


def _try_connect(url: str, **overrides):
    """(connection, 0, "") or (None, 3, why) when nothing answers, (None, 4, why) when refused."""
    from urllib.parse import urlsplit

    import psycopg2

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5432}"
    try:
        return _connect(url, connect_timeout=3, **overrides), 0, ""
    except psycopg2.OperationalError as exc:
        text = str(exc).strip()
        reason = (text.splitlines()[-1] if text else type(exc).__name__).split(" failed: ", 1)[-1]
        if any(sign in text for sign in ("Connection refused", "timeout expired", "No such file or directory")):
            return None, 3, f"no PostgreSQL answers at {where}"
        return None, 4, f"the PostgreSQL at {where} does not let {parts.username or 'its user'} in ({reason})"


def cmd_pg_probe(url: str) -> int:
    """For make test: the role gets in as the URL says (no password asked) and may create databases."""
    from urllib.parse import urlsplit

    connection, rc, why = _try_connect(url, dbname="postgres")
    if connection is None:
        print(why)
        return rc
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user")
            allowed = cursor.fetchone()[0]
    finally:
        connection.close()
    if not allowed:
        parts = urlsplit(url)
        print(f"role {parts.username} of the PostgreSQL at {parts.hostname}:{parts.port or 5432} may not create databases")
        return 4
    return 0


def cmd_db_ping(url: str) -> int:
    """For make up: URL's own database lets URL's role in."""
    connection, rc, why = _try_connect(url)
    if connection is None:
        print(why)
        return rc
    connection.close()
    return 0


def cmd_admin_login() -> int:
    """The admin login line of make up's summary, checked against the current database: a saved
    password the database does not take (written for another database, or changed since) is not
    offered as the way in."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    reset = ".venv/bin/python manage.py changepassword"
    if username := os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip():
        print(f"user {username}, password from DJANGO_SUPERUSER_PASSWORD")
        return 0
    path = Path(settings.VAR_DIR) / "admin-credentials.txt"
    shown = os.path.relpath(path, ROOT)
    saved = dict(line.split("=", 1) for line in path.read_text().splitlines()
                 if "=" in line and not line.startswith("#")) if path.exists() else {}
    user = user_model.objects.filter(username=saved.get("username", ""), is_superuser=True).first()
    if user and user.check_password(saved.get("password", "")):
        print(f"user {user.username}, password in {shown}")
    elif saved:
        print(f"not the password in {shown}: this database's admin has another one (the file was written for "
              f"another database, or the password was changed since); forgot it? {reset} <user>")
    else:
        print(f"the admin user created earlier (forgot the password? {reset} <user>)")
    return 0


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
    if command == "remember" and not args:
        return cmd_remember()
    if command == "exports" and len(args) <= 1:
        return cmd_exports(Path(args[0]) if args else None)
    if command == "database-url" and len(args) == 1:
        print(database_url(args[0]))
        return 0
    if command == "local-db" and len(args) in (2, 3) and args[2:] in ([], ["--superuser"]):
        return cmd_local_db(args[0], args[1], superuser=len(args) == 3)
    if command == "pg-probe" and len(args) == 1:
        return cmd_pg_probe(args[0])
    if command == "db-ping" and len(args) == 1:
        return cmd_db_ping(args[0])
    if command == "admin-login" and not args:
        return cmd_admin_login()
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
