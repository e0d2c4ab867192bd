"""Flower behind its login on every page: `python -m access.flower --port=5555 --address=127.0.0.1`.

Flower 2.2 asks for FLOWER_BASIC_AUTH on its pages and API but serves /metrics and /healthcheck to
anyone (mher/flower#1342); /metrics names every worker and task. This launcher makes those two
handlers ask for the same login, and refuses to start without one, then runs `celery -A resilience
flower` with the arguments it was given. The login stays in the environment (FLOWER_BASIC_AUTH,
read by Flower itself), never on the command line where a process listing would show it.
"""
from __future__ import annotations

import os
import sys

from resilience.env import ConfigError, exit_on_config_error, load_settings_or_exit


def basic_auth_logins(value: str) -> list[str]:
    """FLOWER_BASIC_AUTH as Flower reads it (user:password, comma-separated), or ConfigError."""
    logins = [login.strip() for login in value.split(",") if login.strip()]
    if not logins:
        raise ConfigError("FLOWER_BASIC_AUTH is not set: Flower would show every worker and task to anyone who "
                          "reaches its port; set it to user:password (make up writes a random one to .env.local)")
    for login in logins:
        user, _, password = login.partition(":")
        if not user or not password:
            raise ConfigError("FLOWER_BASIC_AUTH must be user:password (several: comma-separated); "
                              f"an entry has no {'user' if not user else 'password'}")
    return logins


def require_login_everywhere() -> None:
    """Give Flower's open handlers the check its other pages have (tornado's @authenticated, which
    calls Flower's get_current_user: a 401 asking for the basic-auth login)."""
    from flower.views import monitor
    from tornado.web import authenticated

    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not getattr(handler.get, "_login_required", False):
            handler.get = authenticated(handler.get)
            handler.get._login_required = True


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
    load_settings_or_exit()  # also loads .env.local, where FLOWER_BASIC_AUTH usually is
    with exit_on_config_error():
        basic_auth_logins(os.environ.get("FLOWER_BASIC_AUTH", ""))
    require_login_everywhere()
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", "-A", "resilience", "flower", *argv]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
