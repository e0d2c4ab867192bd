"""The production switch (BEHIND_TLS_PROXY), the Content-Security-Policy, and SECRET_KEY, checked in
fresh processes as they start: settings are read once, at import."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Behind the proxy, links in email need the public https:// address (issue 18, item 4).
PROXIED = {"BEHIND_TLS_PROXY": "true", "PUBLIC_BASE_URL": "https://jobs.example.com", "ALLOWED_HOSTS": "jobs.example.com"}


def manage(*args: str, **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "DEBUG", "SECRET_KEY", "BEHIND_", "DATABASE_URL", "SECURE_", "PUBLIC_BASE_URL"))}
    env.update(ENV_FILE="", DJANGO_SETTINGS_MODULE="resilience.settings", SECRET_KEY=secrets.token_urlsafe(50),
               REDIS_URL="redis://127.0.0.1:6379/15", VAR_DIR="/tmp/resilience-settings-test",
               DATABASE_URL="postgres://checks@127.0.0.1:5432/never-connected")
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_check_deploy_is_clean_behind_the_tls_proxy():
    without = manage("check", "--deploy")
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in without.stderr  # what the switch is for

    result = manage("check", "--deploy", **PROXIED)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (2 silenced)." in result.stdout, result.stdout + result.stderr


def test_the_switch_turns_on_secure_cookies_the_proxy_header_and_hsts():
    show = ("from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)")
    assert manage("shell", "-v", "0", "-c", show, **PROXIED).stdout.split() == [
        "True", "True", "('HTTP_X_FORWARDED_PROTO',", "'https')", "31536000", "True"]
    assert manage("shell", "-v", "0", "-c", show).stdout.split() == ["False", "False", "None", "0", "False"]


def test_debug_is_refused_behind_the_tls_proxy():
    result = manage("check", BEHIND_TLS_PROXY="true", DEBUG="true")
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: DEBUG=true with BEHIND_TLS_PROXY=true")


@pytest.mark.parametrize("key", [None, ""])
def test_debug_never_falls_back_to_a_public_secret_key(key):
    result = manage("check", DEBUG="true", SECRET_KEY=key)
    assert result.returncode == 2
    assert result.stderr == "configuration error: SECRET_KEY is not set (see .env.example)\n"


def test_debug_refuses_a_short_secret_key_too():
    result = manage("check", DEBUG="true", SECRET_KEY="short")
    assert result.returncode == 2 and "SECRET_KEY must be at least 32 characters" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/healthz", "/api/admin/dead-letter-queue"])
def test_every_answer_carries_the_content_security_policy(client, path):
    policy = client.get(path)["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
