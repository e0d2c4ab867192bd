"""Read configuration from the environment, failing with one clear line.

Every helper raises ConfigError naming the variable and what was wrong with it;
`exit_on_config_error` turns that into a single line on stderr for every entry
point (manage.py, celery, the web server) instead of a traceback.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ImproperlyConfigured):
    """A setting is missing or malformed; the message is one line for the user."""


def load_env_file(path: Path) -> None:
    """Load KEY=VALUE lines from `path` without overriding the real environment."""
    if not path.exists():
        return
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key, value)


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{name} is not set (see .env.example)")
        return default
    return value


def env_http_url(name: str, default: str = "") -> str:
    """An http:// or https:// URL, or empty (unset). The error quotes only its start: such a URL is
    often a secret (a webhook's) or carries one."""
    value = env_str(name, default)
    if value and not (value.startswith(("http://", "https://")) and urlsplit(value).hostname):
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host, not one starting {value[:8]!r}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    return _env_number(name, default, int, "a whole number", minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    return _env_number(name, default, float, "a number", minimum, maximum)


def _env_number(name, default, parse, kind, minimum, maximum):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = parse(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum of {maximum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def redis_url(name: str, default: str) -> str:
    value = env_str(name, default).strip()
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        raise ConfigError(
            f"{name} is an {scheme}:// URL ({_hide_password(value)}): Redis speaks its own protocol; "
            "use the rediss:// URL (for Upstash: rediss://default:<password>@<host>:6379)"
        )
    if scheme not in ("redis", "rediss"):
        raise ConfigError(f"{name} must start with redis:// or rediss:// (got {_hide_password(value)})")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ConfigError(f"{name} has no host ({_hide_password(value)})")
    return value


def database_config(name: str) -> dict:
    """Django DATABASES['default'] from a postgres:// URL.

    There is no SQLite fallback: a job's transaction held SQLite's one write lock while it worked, so a
    webhook post made meanwhile waited 30 s and failed (the lead was lost). Unset, `make up` starts a
    project-local PostgreSQL and writes its URL to .env.local, so every command finds the same database.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        raise ConfigError(
            f"{name} is not set: run make up (it starts a project-local PostgreSQL and writes {name} to "
            ".env.local), or set it to postgres://user:password@host:5432/dbname"
        )
    parts = urlsplit(raw)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"{name} must be a postgres:// URL (got scheme {parts.scheme or 'none'!r}); SQLite is not supported "
            "(a running job blocks every other write): unset it and make up starts a project-local PostgreSQL"
        )
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc})") from None
    db_name = unquote(parts.path.lstrip("/"))
    if not db_name:
        raise ConfigError(f"{name} names no database (postgres://user@host:5432/<database>)")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": db_name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port),
        # Long-lived processes: reuse, but check before use so a restarted PostgreSQL costs one
        # failed request at most. Workers and the dispatcher skip the check (a query per job): they
        # meet a dropped connection at their first query and reconnect (workers.runner).
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5},
    }


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turn a ConfigError raised while loading settings into one line and exit 2."""
    try:
        yield
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


def load_settings_or_exit(loader: Callable[[], object] | None = None) -> None:
    """Force Django settings to load now, so a bad value stops start-up in one line."""
    with exit_on_config_error():
        if loader is not None:
            loader()
        else:
            from django.conf import settings

            settings.INSTALLED_APPS  # noqa: B018 - touching it loads the module


_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def env_rate(name: str, default: str) -> tuple[int, float] | None:
    """'50/min' -> (50, 60.0); '30/5s' -> (30, 5.0); '0' or 'off' -> None (no limit)."""
    raw = os.environ.get(name, default).strip().lower()
    if raw in ("0", "off", "none", "unlimited"):
        return None
    match = re.fullmatch(r"(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)", raw)
    if not match or int(match.group(1)) < 1 or match.group(3) not in _PERIODS or match.group(2) in (".",):
        raise ConfigError(f"{name}={raw!r} is not a rate: use N/s, N/min or N/h (e.g. 50/min), or 0 for no limit")
    multiple = float(match.group(2)) if match.group(2) else 1.0
    if multiple <= 0:
        raise ConfigError(f"{name}={raw!r} has a period of zero")
    return int(match.group(1)), multiple * _PERIODS[match.group(3)]
