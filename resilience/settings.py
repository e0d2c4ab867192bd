"""Django settings, all read from the environment (and `.env.local`) through resilience.env."""
from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from resilience.env import (
    ConfigError,
    database_config,
    env_bool,
    env_float,
    env_http_url,
    env_int,
    env_list,
    env_rate,
    env_str,
    load_env_file,
    redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# ENV_FILE= (empty) skips the file, as the test suite does.
_env_file = os.environ.get("ENV_FILE", str(BASE_DIR / ".env.local"))
if _env_file:
    load_env_file(Path(_env_file))
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
MOCK_MODE = env_bool("MOCK_MODE", True)

# Required with DEBUG too: a public fallback key would let anyone forge sessions of a DEBUG system
# that is reachable, and a key made at start-up would differ between processes (and log everyone
# out at each restart). make up writes a random one to .env.local.
SECRET_KEY = env_str("SECRET_KEY")
if len(SECRET_KEY) < 32:
    raise ConfigError("SECRET_KEY must be at least 32 characters (make up writes a random one to .env.local)")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# On the API a CSRF refusal is JSON like every other error there (the admin keeps Django's page).
CSRF_FAILURE_VIEW = "resilience.http.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "workers",
    "monitoring",
    "leads",
    "dlq",
    "access",
    "delivery",
    "sites",
    "axes",  # login throttling: its lock-outs are listed in the admin under Axes
    "django_celery_results",  # Celery's own result of each task execution (see CELERY_RESULT_BACKEND)
    "emails",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "access.middleware.content_security_policy",
    "resilience.middleware.AdminBadQueryMiddleware",
    "resilience.middleware.DatabaseUnavailableMiddleware",  # PostgreSQL away: 503 + Retry-After, not 500
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns its lock-out into the 429 page
]

ROOT_URLCONF = "resilience.urls"
# The Celery app that workers run and the dispatcher publishes through (workers/celery_app.py), named as
# ROOT_URLCONF is: the runtime imports no app, so it finds the wiring that plugs them in by name.
WORKERS_CELERY_APP = "resilience.celery:app"
WSGI_APPLICATION = "resilience.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_config("DATABASE_URL")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# The admin shows times with seconds and their zone, as the dashboard does (resilience/formats/en).
FORMAT_MODULE_PATH = ["resilience.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Security: login throttling, CSP, the production switch -------------------------------------
# django-axes: LOGIN_FAILURE_LIMIT wrong passwords for one user from one address lock that pair out
# for LOGIN_LOCKOUT_MINUTES (429); a correct password meanwhile is refused too. Lift it early with
# `manage.py axes_reset_username NAME` (or axes_reset_ip, axes_reset). A success resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "access.middleware.client_ip"
AXES_USERNAME_CALLABLE = "access.middleware.login_username"

# Sent on every page (the admin, the dashboard): scripts and styles only from our static files, no
# inline code, no framing. The admin and the dashboard (static JS, data in json_script) need no more.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# Behind the TLS reverse proxy docs/security.md describes (it terminates HTTPS, sets X-Forwarded-Proto and
# appends the client to X-Forwarded-For): cookies only over HTTPS, HSTS, and the proxy's word on
# the scheme and the client's address. Only the proxy can reach the app (127.0.0.1), so it is the
# only one whose headers count.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    if DEBUG:
        raise ConfigError("DEBUG=true with BEHIND_TLS_PROXY=true: DEBUG pages show settings and code to anyone; "
                          "set DEBUG=false in production")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31_536_000  # a year
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SILENCED_SYSTEM_CHECKS = [
        # SECURE_SSL_REDIRECT: the proxy redirects http:// to https://; the callers that reach the app
        # directly on 127.0.0.1 (make up's readiness check, Prometheus on the same host) speak plain
        # HTTP and must not be redirected.
        "security.W008",
        # SECURE_HSTS_PRELOAD: asking browsers to preload HSTS binds the whole registrable domain,
        # which is its owner's decision, not this app's.
        "security.W021",
    ]

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    raise ConfigError(f"LOG_LEVEL={LOG_LEVEL!r} must be DEBUG, INFO, WARNING or ERROR")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # No terminal sequence from a logged value reaches `make logs` (resilience.logfiles).
        "plain": {"()": "resilience.logfiles.TerminalSafeFormatter",
                  "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"},
        # Hypercorn's own access-log line, kept as it was; every line one line (resilience.logfiles).
        "access": {"()": "resilience.logfiles.OneLineFormatter",
                   "fmt": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "datefmt": "[%Y-%m-%d %H:%M:%S %z]"},
    },
    # Every handler redacts secrets (resilience.redaction): error text quotes data, PostgreSQL's DETAIL quotes values.
    "filters": {"redact_secrets": {"()": "resilience.redaction.RedactSecrets"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
        # The web server's access log (resilience.access_log): only hypercorn's worker logs to
        # hypercorn.access, and the file is opened at its first line (delay), so no other process
        # touches it. Rotated as supervisord rotates the others; 0600.
        "access_file": {
            "()": "resilience.logfiles.OwnerOnlyRotatingFileHandler",
            "filename": str(VAR_DIR / "log" / "web-access.log"),
            "maxBytes": 10 * 1024 * 1024, "backupCount": 5, "delay": True, "encoding": "utf-8",
            "formatter": "access", "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # One line per request whatever LOG_LEVEL is, as hypercorn's own file had it.
        "hypercorn.access": {"handlers": ["access_file"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # axes.apps says "BEGIN version ..." at every start of every command: noise. Lock-outs still log.
        "axes.apps": {"level": "WARNING"},
        # Configured here so that only the redacting handler writes them: Django's defaults give "django"
        # a console and an admin-mail handler and "django.server" its own; Celery gives "celery.task" a
        # handler of its own unless it has one.
        "django": {},
        "django.server": {"propagate": True},
        "celery.task": {"handlers": ["console"], "propagate": False},
    },
}

# --- Integrations -----------------------------------------------------------------------------
REDIS_URL = redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
CLAY_WEBHOOK_SECRET = env_str("CLAY_WEBHOOK_SECRET", "")
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", "")
if not MOCK_MODE and not ANTHROPIC_API_KEY:
    raise ConfigError("ANTHROPIC_API_KEY is not set and MOCK_MODE is off: set the key, or MOCK_MODE=true")

# --- Site generation with Claude (sites/) ----------------------------------------------------
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-3-haiku-20240307")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", "")  # empty: the SDK's own (https://api.anthropic.com)
ANTHROPIC_TIMEOUT_SECONDS = env_float("ANTHROPIC_TIMEOUT_SECONDS", 60.0, minimum=1.0, maximum=600.0)
ANTHROPIC_MAX_TOKENS = env_int("ANTHROPIC_MAX_TOKENS", 2048, minimum=256)
# USD per million tokens: input, output, cache write, cache read. A model missing here could not be
# costed, so it stops start-up; ANTHROPIC_MODEL_PRICES prices one the table does not know.
AI_MODEL_PRICES = {
    "claude-3-haiku-20240307": ("0.25", "1.25", "0.30", "0.03"),
    "claude-3-5-haiku-20241022": ("0.80", "4", "1", "0.08"),
    "claude-haiku-4-5": ("1", "5", "1.25", "0.10"),
    "claude-sonnet-4-5": ("3", "15", "3.75", "0.30"),
}
if _model_prices := env_str("ANTHROPIC_MODEL_PRICES", ""):
    _parts = [part.strip() for part in _model_prices.split(",")]
    # At most 4 decimals: a cost is tokens x price / 10^6, kept with 10 decimals (AiRequest.cost_usd),
    # so every cost is then stored exactly as it was computed and printed.
    if len(_parts) != 4 or not all(re.fullmatch(r"\d+(\.\d{1,4})?", part) for part in _parts):
        raise ConfigError(f"ANTHROPIC_MODEL_PRICES={_model_prices!r} must be four USD prices per million tokens, "
                          "each with at most 4 decimals: input,output,cache write,cache read (e.g. 0.25,1.25,0.30,0.03)")
    AI_MODEL_PRICES[ANTHROPIC_MODEL] = tuple(_parts)
if ANTHROPIC_MODEL not in AI_MODEL_PRICES:
    raise ConfigError(f"ANTHROPIC_MODEL={ANTHROPIC_MODEL!r} has no price (known: {', '.join(AI_MODEL_PRICES)}); "
                      "set ANTHROPIC_MODEL_PRICES=input,output,cache write,cache read in USD per million tokens")
# The day's AI spend (UTC) at which the site-generation queue pauses itself until the next day; empty: no cap.
_budget = env_str("AI_DAILY_BUDGET_USD", "")
try:
    AI_DAILY_BUDGET_USD = Decimal(_budget) if _budget else None
except InvalidOperation:
    raise ConfigError(f"AI_DAILY_BUDGET_USD={_budget!r} is not an amount in USD (e.g. 5 or 0.50)") from None
if AI_DAILY_BUDGET_USD is not None and not (AI_DAILY_BUDGET_USD.is_finite() and AI_DAILY_BUDGET_USD > 0):
    raise ConfigError(f"AI_DAILY_BUDGET_USD={_budget!r} must be above 0 (leave it empty for no budget)")

# --- Lead intake ------------------------------------------------------------------------------
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 1_048_576, minimum=1024)
WEBHOOK_MAX_LEADS = env_int("WEBHOOK_MAX_LEADS", 500, minimum=1)
LEAD_MIN_SCORE = env_int("LEAD_MIN_SCORE", 50, minimum=0, maximum=100)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BYTES

# --- Email (emails/) ----------------------------------------------------------------------------
# SMTP from EMAIL_URL (smtp://user:pass@host:587?tls=1) or EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD, EMAIL_USE_TLS / EMAIL_USE_SSL. A provider through django-anymail:
# EMAIL_PROVIDER=postmark (amazon_ses, sendgrid, mailgun, resend ...) with its ANYMAIL_<NAME> settings
# (resilience/mail_provider_settings.py), and nothing else changes. MOCK_MODE sends nothing: each message
# is written as an .eml file under var/mail/ that a person can open.
from resilience.mail_provider_settings import provider_settings  # noqa: E402
from resilience.mail_settings import public_base_url, sender, smtp_settings  # noqa: E402

_smtp = smtp_settings()
globals().update(_smtp)
_provider = provider_settings()
# EMAIL_PROVIDER also chooses whose signed tracking webhooks /email/events/<provider>/ accepts.
EMAIL_PROVIDER = _provider["EMAIL_PROVIDER"]
ANYMAIL = _provider["ANYMAIL"]
EMAIL_PROVIDER_SECRETS = _provider["EMAIL_PROVIDER_SECRETS"]  # by value, for resilience.redaction; never shown
# MOCK_MODE_SENDS_EMAIL=true keeps Claude mocked but sends through the backend above (make chaos: a
# loopback SMTP server that counts what arrives); off, MOCK_MODE never sends a real email.
MOCK_MODE_SENDS_EMAIL = env_bool("MOCK_MODE_SENDS_EMAIL", False)
EMAIL_SENDS_MAIL = not MOCK_MODE or MOCK_MODE_SENDS_EMAIL
EMAIL_BACKEND = (env_str("EMAIL_BACKEND", _provider["PROVIDER_BACKEND"] or "emails.backends.SMTPBackend")
                 if EMAIL_SENDS_MAIL else "emails.backends.FileBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
# The sender of transactional mail (a handover); marketing mail (outreach, campaigns) comes from
# CAMPAIGN_FROM_EMAIL when set, so that complaints about marketing do not sink the reputation of the
# address customers' handovers come from (a subdomain of its own, e.g. news@mail.agency.com).
DEFAULT_FROM_EMAIL = sender("DEFAULT_FROM_EMAIL", "Resilience <hello@localhost>")
CAMPAIGN_FROM_EMAIL = sender("CAMPAIGN_FROM_EMAIL", DEFAULT_FROM_EMAIL)
# The right-hand side of every Message-ID (<msg-<message id>@DOMAIN>): the sender's domain by default.
EMAIL_MESSAGE_ID_DOMAIN = env_str("EMAIL_MESSAGE_ID_DOMAIN", DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "localhost")
# Links in emails (tracking, unsubscribe) point here: the address the public reaches this app at.
# Required when mail really goes out or behind the TLS proxy (https, not loopback, there).
PUBLIC_BASE_URL = public_base_url(sends_mail=EMAIL_SENDS_MAIL, behind_tls_proxy=BEHIND_TLS_PROXY)
# Signs the tracking and unsubscribe tokens (each purpose with its own salt). Its own key, so that
# SECRET_KEY can be rotated without breaking the links in mail already sent.
EMAIL_SIGNING_KEY = env_str("EMAIL_SIGNING_KEY", SECRET_KEY)
if len(EMAIL_SIGNING_KEY) < 32:
    raise ConfigError("EMAIL_SIGNING_KEY must be at least 32 characters")
# The email breaker (emails/breaker.py) pauses email-sending when sends to this many distinct
# recipients were refused on our side (5.7.x, relay, login, content) within the window ...
EMAIL_BREAKER_REFUSED_RECIPIENTS = env_int("EMAIL_BREAKER_REFUSED_RECIPIENTS", 5, minimum=1)
EMAIL_BREAKER_REFUSED_WINDOW_SECONDS = env_int("EMAIL_BREAKER_REFUSED_WINDOW_SECONDS", 600, minimum=1)
# ... or when bounces or complaints reach these percentages of the messages sent or refused in the
# rate window, judged once it holds at least EMAIL_BREAKER_MIN_SENDS of them (Amazon SES reviews an
# account at 5 % bounces and 0.1 % complaints; Gmail and Yahoo ask senders to stay under 0.1 % spam).
EMAIL_BREAKER_RATE_WINDOW_SECONDS = env_int("EMAIL_BREAKER_RATE_WINDOW_SECONDS", 86_400, minimum=60)
EMAIL_BREAKER_MIN_SENDS = env_int("EMAIL_BREAKER_MIN_SENDS", 500, minimum=1)
EMAIL_BREAKER_BOUNCE_PERCENT = env_float("EMAIL_BREAKER_BOUNCE_PERCENT", 5.0, minimum=0.001, maximum=100.0)
EMAIL_BREAKER_COMPLAINT_PERCENT = env_float("EMAIL_BREAKER_COMPLAINT_PERCENT", 0.1, minimum=0.001, maximum=100.0)

# --- Job ledger, retries and the dispatcher ---------------------------------------------------
# Attempts per queue: a job that fails this many times goes to the dead-letter queue.
JOB_MAX_ATTEMPTS = {
    "lead-processing": env_int("LEAD_PROCESSING_MAX_ATTEMPTS", 3, minimum=1),
    "site-generation": env_int("SITE_GENERATION_MAX_ATTEMPTS", 3, minimum=1),
    "email-sending": env_int("EMAIL_SENDING_MAX_ATTEMPTS", 3, minimum=1),
    "delivery": env_int("DELIVERY_MAX_ATTEMPTS", 3, minimum=1),
}
QUEUE_CONCURRENCY = {
    "lead-processing": env_int("LEAD_PROCESSING_CONCURRENCY", 5, minimum=1),
    "site-generation": env_int("SITE_GENERATION_CONCURRENCY", 3, minimum=1),
    "email-sending": env_int("EMAIL_SENDING_CONCURRENCY", 10, minimum=1),
    "delivery": env_int("DELIVERY_CONCURRENCY", 2, minimum=1),
}
# Global rate limits: at most N job starts per period for each queue, across every pool and host.
QUEUE_RATE_LIMITS = {
    "lead-processing": env_rate("LEAD_PROCESSING_RATE", "50/min"),
    "site-generation": env_rate("SITE_GENERATION_RATE", "20/min"),
    "email-sending": env_rate("EMAIL_SENDING_RATE", "100/min"),
    "delivery": env_rate("DELIVERY_RATE", "10/min"),
}
RETRY_BASE_SECONDS = env_float("RETRY_BASE_SECONDS", 10.0, minimum=0.0)
RETRY_MAX_SECONDS = env_float("RETRY_MAX_SECONDS", 600.0, minimum=0.0)
# A running job's claim: it lasts JOB_LEASE_SECONDS from its last renewal; one thread per worker
# process renews every job that process runs, in one UPDATE, every JOB_LEASE_RENEW_SECONDS (so at most
# one lease write per process per renewal, whatever its concurrency); the reaper takes a job back only
# once its lease is JOB_LEASE_GRACE_SECONDS past its end. A vanished host's jobs so run again within
# lease + grace + the reaper's sweep (0.5 s) + a dispatch, 4.1 s with these figures, while a renewing
# thread may be 2.5 s late (starved for CPU) before anything is reaped. docs/guarantees.md says why.
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 3.0, minimum=1.0, maximum=600.0)
JOB_LEASE_RENEW_SECONDS = env_float("JOB_LEASE_RENEW_SECONDS", 1.0, minimum=0.2, maximum=300.0)
JOB_LEASE_GRACE_SECONDS = env_float("JOB_LEASE_GRACE_SECONDS", 0.5, minimum=0.0, maximum=30.0)
if JOB_LEASE_SECONDS < 2 * JOB_LEASE_RENEW_SECONDS:
    raise ConfigError(f"JOB_LEASE_SECONDS ({JOB_LEASE_SECONDS:g}) must be at least 2 x JOB_LEASE_RENEW_SECONDS "
                      f"({JOB_LEASE_RENEW_SECONDS:g}), or one late renewal would end the lease of a live worker")
# A job published to Redis but not started within this long is published again: its message was
# lost (Redis restarted) or is held by a pool that died. Backpressure means a published job
# normally starts within milliseconds, so a short wait costs little; a duplicate message is harmless.
JOB_REDISPATCH_SECONDS = env_float("JOB_REDISPATCH_SECONDS", 30.0, minimum=1.0)
DISPATCH_INTERVAL_SECONDS = env_float("DISPATCH_INTERVAL_SECONDS", 0.5, minimum=0.01)
DISPATCH_BATCH_SIZE = env_int("DISPATCH_BATCH_SIZE", 100, minimum=1)
# A leader silent this long (host gone, frozen, cut off, or a round stuck this long) loses its lock
# and another candidate takes over: PostgreSQL ends its lock session (idle_session_timeout).
DISPATCHER_LEADER_TIMEOUT_SECONDS = env_float("DISPATCHER_LEADER_TIMEOUT_SECONDS", 10.0, minimum=2.0)
if DISPATCHER_LEADER_TIMEOUT_SECONDS < 4 * DISPATCH_INTERVAL_SECONDS:
    raise ConfigError("DISPATCHER_LEADER_TIMEOUT_SECONDS must be at least 4 x DISPATCH_INTERVAL_SECONDS, "
                      "or a healthy leader would lose its lock between two rounds")

# --- Heartbeats and health -------------------------------------------------------------------
# Every worker writes a heartbeat this often; it counts as gone when none came for HEARTBEAT_TTL_SECONDS
# (one period plus a grace period), so killing every worker of a queue shows within that long.
HEARTBEAT_INTERVAL_SECONDS = env_float("HEARTBEAT_INTERVAL_SECONDS", 30.0, minimum=0.5)
HEARTBEAT_TTL_SECONDS = env_float("HEARTBEAT_TTL_SECONDS", 45.0, minimum=1.0)
if HEARTBEAT_TTL_SECONDS <= HEARTBEAT_INTERVAL_SECONDS:
    raise ConfigError("HEARTBEAT_TTL_SECONDS must be above HEARTBEAT_INTERVAL_SECONDS, or live workers would flicker")
# The health rules count errors and the failure rate over this recent window, so one bad hour does
# not mark a queue unhealthy forever.
HEALTH_WINDOW_MINUTES = env_int("HEALTH_WINDOW_MINUTES", 15, minimum=1)
# Jobs waiting this long while no job of their queue started, finished or ran: the consumers are stuck.
HEALTH_STALL_SECONDS = env_int("HEALTH_STALL_SECONDS", 120, minimum=5)
# The failure-rate rule judges a queue only once this many jobs finished in the window (rejected input
# not counted): one failure among three jobs is not a failure rate of 33 %.
HEALTH_MIN_SAMPLE = env_int("HEALTH_MIN_SAMPLE", 20, minimum=1)
# Finished jobs older than this leave the ledger; their counts stay in daily statistics.
LEDGER_RETENTION_DAYS = env_int("LEDGER_RETENTION_DAYS", 7, minimum=1)
# Resolved dead-letter entries and raw lead submissions leave after these (workers.retention, with the
# ledger); an unresolved entry, and a submission an unfinished job or an unresolved entry needs, stay.
DLQ_RESOLVED_RETENTION_DAYS = env_int("DLQ_RESOLVED_RETENTION_DAYS", 30, minimum=1)
SUBMISSION_RETENTION_DAYS = env_int("SUBMISSION_RETENTION_DAYS", 30, minimum=1)
# The dashboard's per-minute job counts and hourly AI spend (its charts show the last 6 hours) leave
# after this (workers.job_minutes, sites.spend_hours).
CHART_RETENTION_DAYS = env_int("CHART_RETENTION_DAYS", 7, minimum=1)
# The most rows one bulk action (admin or API: requeue, resolve, delete, cancel, run now) may touch:
# a filter that selects more is refused with its count, so a slip of the filter cannot act on the lot.
BULK_ACTION_MAX = env_int("BULK_ACTION_MAX", 1000, minimum=1, maximum=100_000)
# Django's delete confirmation posts back one field per row: room for a full bulk action's rows.
DATA_UPLOAD_MAX_NUMBER_FIELDS = max(1000, BULK_ACTION_MAX + 100)
# The admin's history (who changed what, in the admin or through the API) and the login records
# (django-axes: attempts, successful and failed logins) leave after these (access.retention).
ADMIN_HISTORY_RETENTION_DAYS = env_int("ADMIN_HISTORY_RETENTION_DAYS", 365, minimum=1)
LOGIN_RECORD_RETENTION_DAYS = env_int("LOGIN_RECORD_RETENTION_DAYS", 30, minimum=1)
# The providers' tracking events (delivered, opened, bounced ...) leave after this (emails.retention);
# the suppressions they caused stay.
EMAIL_EVENT_RETENTION_DAYS = env_int("EMAIL_EVENT_RETENTION_DAYS", 90, minimum=1)
if timedelta(days=LOGIN_RECORD_RETENTION_DAYS) <= AXES_COOLOFF_TIME:
    raise ConfigError(f"LOGIN_RECORD_RETENTION_DAYS={LOGIN_RECORD_RETENTION_DAYS} must be longer than "
                      "LOGIN_LOCKOUT_MINUTES, or pruning would lift lock-outs early")
# Where the dashboard links to Flower; by default the host the browser used, on FLOWER_PORT.
FLOWER_PUBLIC_URL = env_http_url("FLOWER_PUBLIC_URL")
# Delivery's "notify the team" step posts to this webhook (e.g. a Slack incoming webhook) with MOCK_MODE off;
# empty, or in MOCK_MODE, it writes a log line. The URL often is the secret: it is never shown whole.
DELIVERY_NOTIFY_WEBHOOK_URL = env_http_url("DELIVERY_NOTIFY_WEBHOOK_URL")
# Where a generated site's call to action leads (a booking page): tracked as a click through the site's
# own /sites/<id>/book, which redirects here; empty, to a mail to DEFAULT_FROM_EMAIL's address.
SITE_BOOKING_URL = env_http_url("SITE_BOOKING_URL")

# --- Celery -----------------------------------------------------------------------------------
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ConfigError("CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT")
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    # Redis would hand a still-running task to a second worker.
    raise ConfigError("CELERY_VISIBILITY_TIMEOUT must be above CELERY_TASK_TIME_LIMIT")
# The lease keeper renews an attempt's lease for CELERY_TASK_TIME_LIMIT and no longer (workers.runner):
# an attempt whose outside calls may last longer is reaped while they run and made again (a site paid
# twice, a message found `sending` and left unknown), so such settings stop start-up.
# A site attempt: up to AI_REQUESTS_PER_ATTEMPT requests (sites.claude.ask_for_site asks once more after a
# malformed answer), each ANTHROPIC_TIMEOUT_SECONDS at most while the API is silent (the SDK's timeout
# bounds each phase, connecting, sending and each wait for the answer's next bytes, not their sum), then
# the site attempt's retries of a paid answer's record while PostgreSQL is away.
AI_REQUESTS_PER_ATTEMPT = 2
# How long a site attempt keeps trying to record a paid answer while PostgreSQL is away (sites.claude):
# the answer exists only in the worker until it is written, and a lost one is paid for again.
AI_RECORD_RETRY_SECONDS = 30.0
_site_attempt = AI_REQUESTS_PER_ATTEMPT * ANTHROPIC_TIMEOUT_SECONDS + AI_RECORD_RETRY_SECONDS
if _site_attempt > CELERY_TASK_TIME_LIMIT:
    raise ConfigError(
        f"ANTHROPIC_TIMEOUT_SECONDS={ANTHROPIC_TIMEOUT_SECONDS:g} lets a site attempt outlast its lease: "
        f"{AI_REQUESTS_PER_ATTEMPT} requests x {ANTHROPIC_TIMEOUT_SECONDS:g} s + {AI_RECORD_RETRY_SECONDS:g} s "
        f"of retries to record a paid answer = {_site_attempt:g} s, above CELERY_TASK_TIME_LIMIT="
        f"{CELERY_TASK_TIME_LIMIT} (a slow answer would be paid twice); lower ANTHROPIC_TIMEOUT_SECONDS to "
        f"{(CELERY_TASK_TIME_LIMIT - AI_RECORD_RETRY_SECONDS) / AI_REQUESTS_PER_ATTEMPT:g} or raise "
        "CELERY_TASK_TIME_LIMIT")
# An email attempt: one SMTP send, cut off as a whole EMAIL_TIMEOUT after it began (emails.backends.
# SendDeadline), save while connecting, which waits up to EMAIL_TIMEOUT for each address of the host it
# tries: two are counted (a first one, IPv6 often, that never answers). A provider through
# django-anymail has its own timeout, not checked here.
EMAIL_SEND_TIMEOUTS = 2
_email_send = EMAIL_SEND_TIMEOUTS * _smtp["EMAIL_TIMEOUT"]
if _email_send > CELERY_TASK_TIME_LIMIT:
    raise ConfigError(
        f"EMAIL_TIMEOUT={_smtp['EMAIL_TIMEOUT']:g} lets an email attempt outlast its lease: a send takes up to "
        f"{EMAIL_SEND_TIMEOUTS} x EMAIL_TIMEOUT (cut off at EMAIL_TIMEOUT, but connecting waits that long for "
        f"each of two addresses) = {_email_send:g} s, above "
        f"CELERY_TASK_TIME_LIMIT={CELERY_TASK_TIME_LIMIT} (the message would be found `sending` and left unknown); "
        f"lower EMAIL_TIMEOUT to {CELERY_TASK_TIME_LIMIT / EMAIL_SEND_TIMEOUTS:g} or raise CELERY_TASK_TIME_LIMIT")

FLOWER_PORT = env_int("FLOWER_PORT", 5555, minimum=1, maximum=65535)
WEB_PORT = env_int("WEB_PORT", 8000, minimum=1, maximum=65535)
# The web server (hypercorn; resilience/web_server.py, resilience/asgi.py): a connection whose request
# headers are not complete this long after it opened (or after its previous answer) is closed; a body
# not complete this long after its headers is answered 408. A body over the largest any endpoint takes
# is read and thrown away up to WEB_DISCARD_MAX_BYTES, so that its sender can read the 413.
WEB_HEADER_TIMEOUT_SECONDS = env_float("WEB_HEADER_TIMEOUT_SECONDS", 10.0, minimum=0.5, maximum=300.0)
WEB_BODY_TIMEOUT_SECONDS = env_float("WEB_BODY_TIMEOUT_SECONDS", 30.0, minimum=0.5, maximum=600.0)
WEB_DISCARD_MAX_BYTES = env_int("WEB_DISCARD_MAX_BYTES", 16 * 1_048_576, minimum=0)
# Requests running Django code at once (each on its own thread, with its own database session).
WEB_MAX_CONCURRENT_REQUESTS = env_int("WEB_MAX_CONCURRENT_REQUESTS", 16, minimum=1, maximum=1000)

QUEUE_NAMES = ("lead-processing", "site-generation", "email-sending", "delivery")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # keep trying through a Redis restart
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    # redis-py's default read timeout would break blocking reads; bound connects only.
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 10,
    "retry_on_timeout": True,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless told to
# reuse them: a new PostgreSQL connection (a server process forked) for every job, the largest cost
# of the ledger path measured (bench/speed.py). The runner's close_old_connections() already applies
# CONN_MAX_AGE and drops a broken connection, so the fixup only closes one every so many tasks.
CELERY_DB_REUSE_MAX = 10_000
# The job ledger in PostgreSQL is the record of every job. Celery's own result of each execution
# (status, worker, start and end, traceback) is kept beside it by django-celery-results, under the
# job's id (the task id), and pruned with the ledger (workers.retention), not by Celery's beat.
CELERY_TASK_IGNORE_RESULT = False
CELERY_RESULT_BACKEND = "workers.results:LedgerResultBackend"  # django-db, stored in one upsert
CELERY_RESULT_EXTENDED = True  # keep the task's name, arguments and worker
# No CELERY_TASK_TRACK_STARTED: a STARTED state is a second write per task (measured: no-op throughput
# 16 -> 13 jobs/s) and the ledger already says what runs where; the runtime travels in TaskResult.meta.
CELERY_RESULT_EXPIRES = None  # no backend_cleanup task: prune_ledger removes results with their jobs
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_DEFAULT_QUEUE = QUEUE_NAMES[0]
# Task names start with their app; each app's tasks run on its queue.
CELERY_TASK_ROUTES = {
    "leads.*": {"queue": "lead-processing"},
    "sites.*": {"queue": "site-generation"},
    "emails.*": {"queue": "email-sending"},
    "delivery.*": {"queue": "delivery"},
}
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_SEND_TASK_EVENTS = True
# On a lost Redis connection, let running jobs finish: their outcome is recorded in the ledger, and the
# redelivered message then finds the job done and does nothing. Cancelling would only waste the work.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
# How many worker pools consume every queue (primary and backup): the dispatcher keeps at most
# concurrency x pools jobs of a queue in Redis at once.
WORKER_POOLS = env_int("WORKER_POOLS", 2, minimum=1)
