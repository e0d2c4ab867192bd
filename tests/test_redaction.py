from resilience.redaction import REDACTED, redact, redact_text


def test_secret_named_keys_are_redacted_at_any_depth():
    data = {
        "email": "a@b.io",
        "password": "hunter2",
        "nested": {"api_key": "abc", "apiKey": "abc", "Authorization": "Bearer x", "list": [{"access_token": "t"}]},
        "clay_secret": "s",
        "empty_token": "",
    }
    assert redact(data) == {
        "email": "a@b.io",
        "password": REDACTED,
        "nested": {"api_key": REDACTED, "apiKey": REDACTED, "Authorization": REDACTED, "list": [{"access_token": REDACTED}]},
        "clay_secret": REDACTED,
        "empty_token": "",
    }


def test_secret_looking_values_are_redacted_in_text():
    text = "call failed with key sk-ant-api03-abcdefghijklmnop and header Bearer abcdefghijkl to redis://user:pw@host"
    cleaned = redact_text(text)
    assert "sk-ant-api03" not in cleaned and "abcdefghijkl" not in cleaned and ":pw@" not in cleaned
    assert cleaned.count(REDACTED) == 3


def test_ordinary_data_is_untouched():
    data = {"email": "jane@acme.io", "company": "Acme", "employee_count": 10, "tags": ["a", "b"]}
    assert redact(data) == data


# --- every kind of secret in text -------------------------------------------------------------------

import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from resilience.redaction import RedactSecrets  # noqa: E402
from tests.secret_samples import SAMPLE_IDS, SAMPLES  # noqa: E402


@pytest.mark.parametrize(("text", "secret"), SAMPLES, ids=SAMPLE_IDS)
def test_each_kind_of_secret_is_redacted_in_text(text, secret):
    cleaned = redact_text(f"InvalidLead: email {text!r} is not an email address")
    assert secret not in cleaned and REDACTED in cleaned
    assert redact_text(cleaned) == cleaned  # redacting twice changes nothing


@pytest.mark.parametrize(("text", "kept"), [
    ("redis://:pw@cache:6379/0", "redis://:[redacted]@cache:6379/0"),      # the host stays: it helps
    ("https://bob:pw@example.com/x", "https://bob:[redacted]@example.com/x"),
    ("x:pw@evil", "x:[redacted]@evil"),
    ("password=pw&page=2", "password=[redacted]&page=2"),
    ('{"api_key": "k", "email": "a@b.io"}', '{"api_key": "[redacted]", "email": "a@b.io"}'),
    ("{'Authorization': 'Bearer abcdefghij'}", "{'Authorization': 'Bearer [redacted]'}"),
    ("Authorization: Basic dXNlcjpwdw==", "Authorization: Basic [redacted]"),
    ("X-Api-Key: k1 and db_password=p", "X-Api-Key: [redacted] and db_password=[redacted]"),
    ("jdbc:postgresql://u:pw@db/x", "jdbc:postgresql://u:[redacted]@db/x"),
    ("password=x:pw@evil", "password=[redacted]"),  # two finds over one secret: one replacement
    ("İstanbul PASSWORD=Pw x:Pw@evil", "İstanbul PASSWORD=[redacted] x:[redacted]@evil"),  # "İ".lower() is 2 chars
])
def test_the_key_scheme_user_and_host_stay_readable(text, kept):
    assert redact_text(text) == kept


@pytest.mark.parametrize("text", [
    "email 'jane@acme.io' is not a valid email address",
    "mailto:jane@acme.io, MAILTO:jane@acme.io",
    "author: Jane Doe, tokens: 5, secretary: Bob",
    "2026-11-30 08:10:25 celery@host ready.",
    "Basic authentication is not offered",
    "ConnectionError: Error 111 connecting to 127.0.0.1:6379. Connection refused.",
    'duplicate key value violates unique constraint "leads_lead_email_key" DETAIL: Key (email)=(a@b.io) already exists.',
    "lead submission 12 does not exist",
])
def test_ordinary_error_text_is_untouched(text):
    assert redact_text(text) == text


# --- the logging filter ------------------------------------------------------------------------------

def _formatted(record: logging.LogRecord) -> str:
    assert RedactSecrets().filter(record) is True  # it redacts, it never drops a line
    return logging.Formatter("%(message)s").format(record)


def test_the_filter_redacts_the_message_with_its_arguments():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "job %s failed: %s", ("j1", "password=hunter2"), None)
    assert _formatted(record) == "job j1 failed: password=[redacted]"


def test_the_filter_redacts_the_exception_and_the_stack():
    try:
        raise ValueError('invalid input syntax for type json DETAIL: {"password": "hunter2"}')
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(),
                                   sinfo="Stack (most recent call last):\n  token=hunter3")
    text = _formatted(record)
    assert "hunter2" not in text and "hunter3" not in text
    assert 'ValueError: invalid input syntax for type json DETAIL: {"password": "[redacted]"}' in text


def test_the_filter_leaves_clean_lines_as_they_are():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job %s took %d ms", ("j1", 5), None)
    assert _formatted(record) == "job j1 took 5 ms" and record.args == ("j1", 5)


# Every way a line reaches a log in a process of this project, after Django's set-up and Celery's
# logging set-up as a worker does it (CELERY_WORKER_HIJACK_ROOT_LOGGER=False).
_LOG_EVERYWHERE = """
import logging, sys
import django
django.setup()
from celery.utils.log import get_task_logger
from resilience.celery import app
app.log.setup(loglevel="INFO", redirect_stdouts=True, redirect_level="WARNING")
secret = sys.argv[1]
logging.getLogger().warning("root %s", "password=" + secret)
logging.getLogger("workers.ledger").error("ledger password=" + secret)
try:
    raise ValueError("token=" + secret)
except ValueError:
    logging.getLogger("django.request").exception("request failed")
logging.getLogger("django.server").warning("GET /?api_key=%s", secret)
logging.getLogger("celery.app.trace").error("celery token=%s", secret)
get_task_logger("leads.tasks").error("task logger secret=%s", secret)
print("printed password=" + secret)
"""


@pytest.mark.parametrize("debug", ["false", "true"])
def test_no_log_handler_of_a_worker_process_writes_a_secret(debug):
    secret = "NeverInALog42"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DEBUG": debug, "LOG_LEVEL": "INFO"}
    result = subprocess.run([sys.executable, "-c", _LOG_EVERYWHERE, secret], capture_output=True, text=True,
                            env=env, cwd=Path(__file__).resolve().parents[1], timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert secret not in output
    for line in ("root password=", "ledger password=", "ValueError: token=", "GET /?api_key=", "celery token=",
                 "task logger secret=", "printed password="):
        assert line + REDACTED in output, (line, output)


# --- PostgreSQL's error text -----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    'CONTEXT:  JSON data, line 1: ...qqqq Hunter2Cut rrrr", "y": "\\u0000...',   # a value cut from its key
    """LINE 1: select '{"note": "Hunter2Cut"}'::jsonb""",
    'DETAIL:  Token "Hunter2Cut" is invalid.',
    "DETAIL:  Failing row contains (1, Hunter2Cut, null).",
    'CONTEXT:  JSON data, line 1: {"password": "Hunter2Cut\\u0000...',           # a quote PostgreSQL cut
])
def test_the_data_postgresql_quotes_in_its_errors_is_redacted(text):
    cleaned = redact_text(f"DataError: invalid input\n{text}\nHINT: none")
    assert "Hunter2Cut" not in cleaned and cleaned.endswith("\nHINT: none")
    assert redact_text(cleaned) == cleaned


@pytest.mark.django_db
@pytest.mark.parametrize("payload", [
    {"password": "PgSecret1", "bad": "\u0000"},
    {"note": "q" * 200 + " PgSecret1 " + "r" * 10, "bad": "\u0000"},  # cut: the key is not in the error
])
def test_a_real_postgresql_error_quoting_a_secret_is_logged_redacted(payload):
    from django.db import DataError, transaction

    from leads.models import LeadSubmission

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.redaction.postgresql")
    logger.addHandler(handler)
    try:
        with transaction.atomic():
            LeadSubmission.objects.create(source="test", payload=payload)
    except DataError as exc:
        assert "PgSecret1" in str(exc)  # what PostgreSQL said
        logger.error("could not store the lead: %s", exc, exc_info=True)
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "unsupported Unicode escape sequence" in logged and "PgSecret1" not in logged


def test_the_configured_secrets_are_redacted_by_value_wherever_they_are():
    from django.conf import settings

    from resilience.redaction import configured_secrets, redact, redact_text

    assert settings.CLAY_WEBHOOK_SECRET in configured_secrets() and settings.SECRET_KEY in configured_secrets()
    bare = f"email '{settings.CLAY_WEBHOOK_SECRET}' is not an email address"
    assert redact_text(bare) == "email '[redacted]' is not an email address"
    assert redact({"lead": {"email": settings.CLAY_WEBHOOK_SECRET}}) == {"lead": {"email": "[redacted]"}}
    assert all(len(secret) >= 8 for secret in configured_secrets())  # a short value would eat ordinary words
