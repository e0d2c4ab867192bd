"""A bad setting stops every entry point with one clear line, never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = {
    "ENV_FILE": "",
    "DJANGO_SETTINGS_MODULE": "resilience.settings",
    "SECRET_KEY": "k" * 40,
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "DATABASE_URL": "postgres://resilience@127.0.0.1:9/resilience",  # never connected to by `check`
    "VAR_DIR": "/tmp/resilience-settings-test",
    "PUBLIC_BASE_URL": "",  # empty is unset: never the one of the shell the tests run from
}


def start(command: list[str], **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in GOOD and not k.startswith(("CELERY_", "DEBUG"))}
    env.update(GOOD)
    env.update(overrides)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


MANAGE = [sys.executable, "manage.py", "check"]
CELERY = [sys.executable, "-m", "celery", "-A", "resilience", "inspect", "ping"]
GUNICORN = [sys.executable, "-c", "import resilience.wsgi"]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"REDIS_URL": "https://eu1-fancy-cat-12345.upstash.io"},
         "REDIS_URL is an https:// URL (https://eu1-fancy-cat-12345.upstash.io): Redis speaks its own protocol; "
         "use the rediss:// URL (for Upstash: rediss://default:<password>@<host>:6379)"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis:// or rediss:// (got localhost:6379)"),
        ({"REDIS_URL": "redis://:hunter2@:6379"}, "REDIS_URL has no host (redis://:***@:6379)"),
        ({"DATABASE_URL": "mysql://root@localhost/db"},
         "DATABASE_URL must be a postgres:// URL (got scheme 'mysql'); SQLite is not supported (a running job "
         "blocks every other write): unset it and make up starts a project-local PostgreSQL"),
        ({"DATABASE_URL": "sqlite:///var/resilience.sqlite3"},
         "DATABASE_URL must be a postgres:// URL (got scheme 'sqlite'); SQLite is not supported (a running job "
         "blocks every other write): unset it and make up starts a project-local PostgreSQL"),
        # Unset, nothing falls back silently to a database of its own (issue 9, item 3).
        ({"DATABASE_URL": ""},
         "DATABASE_URL is not set: run make up (it starts a project-local PostgreSQL and writes DATABASE_URL to "
         ".env.local), or set it to postgres://user:password@host:5432/dbname"),
        ({"DATABASE_URL": "postgres://localhost"}, "DATABASE_URL names no database (postgres://user@host:5432/<database>)"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 characters (make up writes a random one to .env.local)"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set (see .env.example)"),
        ({"LEAD_MIN_SCORE": "high"}, "LEAD_MIN_SCORE='high' is not a whole number"),
        ({"LEAD_MIN_SCORE": "101"}, "LEAD_MIN_SCORE=101 is above the maximum of 100"),
        ({"BULK_ACTION_MAX": "0"}, "BULK_ACTION_MAX=0 is below the minimum of 1"),
        ({"BULK_ACTION_MAX": "all"}, "BULK_ACTION_MAX='all' is not a whole number"),
        ({"DELIVERY_RATE": "fast"},
         "DELIVERY_RATE='fast' is not a rate: use N/s, N/min or N/h (e.g. 50/min), or 0 for no limit"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean (use true/false, 1/0, yes/no, on/off)"),
        ({"MOCK_MODE": "false", "ANTHROPIC_API_KEY": ""},
         "ANTHROPIC_API_KEY is not set and MOCK_MODE is off: set the key, or MOCK_MODE=true"),
        ({"CELERY_TASK_TIME_LIMIT": "600", "CELERY_VISIBILITY_TIMEOUT": "300"},
         "CELERY_VISIBILITY_TIMEOUT must be above CELERY_TASK_TIME_LIMIT"),
        ({"HEARTBEAT_INTERVAL_SECONDS": "30", "HEARTBEAT_TTL_SECONDS": "20"},
         "HEARTBEAT_TTL_SECONDS must be above HEARTBEAT_INTERVAL_SECONDS, or live workers would flicker"),
        ({"DISPATCH_INTERVAL_SECONDS": "5", "DISPATCHER_LEADER_TIMEOUT_SECONDS": "10"},
         "DISPATCHER_LEADER_TIMEOUT_SECONDS must be at least 4 x DISPATCH_INTERVAL_SECONDS, "
         "or a healthy leader would lose its lock between two rounds"),
        # A lease shorter than two renewal ticks would end at one late renewal (issue 22, item 3).
        ({"JOB_LEASE_SECONDS": "3", "JOB_LEASE_RENEW_SECONDS": "2"},
         "JOB_LEASE_SECONDS (3) must be at least 2 x JOB_LEASE_RENEW_SECONDS (2), or one late renewal would end "
         "the lease of a live worker"),
        ({"JOB_LEASE_GRACE_SECONDS": "45"}, "JOB_LEASE_GRACE_SECONDS=45.0 is above the maximum of 30.0"),
        # Outside calls that could outlast the lease would be reaped and made again (issue 17, item 5).
        ({"ANTHROPIC_TIMEOUT_SECONDS": "136"},
         "ANTHROPIC_TIMEOUT_SECONDS=136 lets a site attempt outlast its lease: 2 requests x 136 s + 30 s of retries "
         "to record a paid answer = 302 s, above CELERY_TASK_TIME_LIMIT=300 (a slow answer would be paid twice); "
         "lower ANTHROPIC_TIMEOUT_SECONDS to 135 or raise CELERY_TASK_TIME_LIMIT"),
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "100", "CELERY_TASK_TIME_LIMIT": "120"},
         "ANTHROPIC_TIMEOUT_SECONDS=60 lets a site attempt outlast its lease: 2 requests x 60 s + 30 s of retries "
         "to record a paid answer = 150 s, above CELERY_TASK_TIME_LIMIT=120 (a slow answer would be paid twice); "
         "lower ANTHROPIC_TIMEOUT_SECONDS to 45 or raise CELERY_TASK_TIME_LIMIT"),
        ({"EMAIL_TIMEOUT": "151"},
         "EMAIL_TIMEOUT=151 lets an email attempt outlast its lease: a send takes up to 2 x EMAIL_TIMEOUT (cut off "
         "at EMAIL_TIMEOUT, but connecting waits that long for each of two addresses) = 302 s, above "
         "CELERY_TASK_TIME_LIMIT=300 (the message would be found `sending` and left unknown); lower EMAIL_TIMEOUT "
         "to 150 or raise CELERY_TASK_TIME_LIMIT"),
        ({"EMAIL_URL": "smtp://mail.example.com?timeout=200"},
         "EMAIL_TIMEOUT=200 lets an email attempt outlast its lease: a send takes up to 2 x EMAIL_TIMEOUT (cut off "
         "at EMAIL_TIMEOUT, but connecting waits that long for each of two addresses) = 400 s, above "
         "CELERY_TASK_TIME_LIMIT=300 (the message would be found `sending` and left unknown); lower EMAIL_TIMEOUT "
         "to 150 or raise CELERY_TASK_TIME_LIMIT"),
        ({"FLOWER_PUBLIC_URL": "javascript:alert(1)"},
         "FLOWER_PUBLIC_URL must be an http:// or https:// URL with a host, not one starting 'javascri'"),
        ({"SITE_BOOKING_URL": "javascript:alert(1)"},
         "SITE_BOOKING_URL must be an http:// or https:// URL with a host, not one starting 'javascri'"),
        ({"SITE_BOOKING_URL": "https://"},
         "SITE_BOOKING_URL must be an http:// or https:// URL with a host, not one starting 'https://'"),
        ({"LOGIN_RECORD_RETENTION_DAYS": "1", "LOGIN_LOCKOUT_MINUTES": "1440"},
         "LOGIN_RECORD_RETENTION_DAYS=1 must be longer than LOGIN_LOCKOUT_MINUTES, or pruning would lift lock-outs "
         "early"),
        ({"ADMIN_HISTORY_RETENTION_DAYS": "0"}, "ADMIN_HISTORY_RETENTION_DAYS=0 is below the minimum of 1"),
    ],
)
def test_bad_setting_stops_manage_py_with_one_line(overrides, expected):
    result = start(MANAGE, **overrides)
    assert result.returncode == 2
    assert result.stderr == f"configuration error: {expected}\n"


@pytest.mark.parametrize("command", [CELERY, GUNICORN], ids=["celery", "wsgi"])
def test_bad_redis_url_stops_celery_and_the_web_server_with_one_line(command):
    result = start(command, REDIS_URL="https://eu1-fancy-cat-12345.upstash.io")
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: REDIS_URL is an https:// URL")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_good_settings_start(tmp_path):
    result = start(MANAGE, VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("overrides", [
    {},  # the defaults: 2 x 60 s + 30 s and 2 x 30 s, within 300 s
    {"ANTHROPIC_TIMEOUT_SECONDS": "135", "EMAIL_TIMEOUT": "150"},  # exactly what the lease covers
    {"ANTHROPIC_TIMEOUT_SECONDS": "600", "CELERY_TASK_TIME_LIMIT": "1230", "CELERY_TASK_SOFT_TIME_LIMIT": "1200",
     "CELERY_VISIBILITY_TIMEOUT": "3600"},  # a longer timeout with a lease to match
])
def test_timeouts_that_fit_the_lease_start(tmp_path, overrides):
    result = start(MANAGE, VAR_DIR=str(tmp_path), **overrides)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overrides, backend", [
    ({}, "emails.backends.FileBackend"),  # MOCK_MODE alone never sends a real email
    ({"EMAIL_URL": "smtp://127.0.0.1:2525"}, "emails.backends.FileBackend"),
    ({"MOCK_MODE_SENDS_EMAIL": "true", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, "emails.backends.SMTPBackend"),
    ({"MOCK_MODE_SENDS_EMAIL": "true", "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
      "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend"}, "anymail.backends.postmark.EmailBackend"),
])
def test_mock_mode_sends_email_only_when_told(tmp_path, overrides, backend):
    show = [sys.executable, "manage.py", "shell", "-c",
            "from django.conf import settings; print(settings.MOCK_MODE, settings.EMAIL_BACKEND)"]
    result = start(show, VAR_DIR=str(tmp_path), MOCK_MODE="true", **overrides)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["True", backend]  # after the shell's own banner
