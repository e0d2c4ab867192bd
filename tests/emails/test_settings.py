"""Email settings from the environment: EMAIL_URL or the separate variables; a bad one is one line."""
import re

import pytest

from resilience.mail_settings import public_base_url, smtp_settings
from resilience.env import ConfigError
from tests.test_settings import MANAGE, start


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("EMAIL_URL", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
                 "EMAIL_USE_SSL", "EMAIL_TIMEOUT", "PUBLIC_BASE_URL", "WEB_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_email_url_with_starttls(monkeypatch):
    monkeypatch.setenv("EMAIL_URL", "smtp://user%40x.io:p%40ss@mail.example.com:587?tls=1&timeout=12")
    assert smtp_settings() == {"EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 587, "EMAIL_HOST_USER": "user@x.io",
                               "EMAIL_HOST_PASSWORD": "p@ss", "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False,
                               "EMAIL_TIMEOUT": 12.0}


def test_smtps_url_is_implicit_tls_on_465(monkeypatch):
    monkeypatch.setenv("EMAIL_URL", "smtps://u:p@mail.example.com")
    config = smtp_settings()
    assert (config["EMAIL_PORT"], config["EMAIL_USE_SSL"], config["EMAIL_USE_TLS"]) == (465, True, False)


def test_separate_variables(monkeypatch):
    monkeypatch.setenv("EMAIL_HOST", "smtp.example.com")
    monkeypatch.setenv("EMAIL_PORT", "2525")
    monkeypatch.setenv("EMAIL_USE_TLS", "true")
    config = smtp_settings()
    assert (config["EMAIL_HOST"], config["EMAIL_PORT"], config["EMAIL_USE_TLS"]) == ("smtp.example.com", 2525, True)


@pytest.mark.parametrize("url, message", [
    ("http://mail.example.com", "EMAIL_URL must start with smtp://, smtp+tls:// or smtps:// (got 'http')"),
    ("smtp://:pw@:25", "EMAIL_URL has no host (smtp://user:password@host:587?tls=1)"),
    ("smtp://mail.example.com?timeout=soon", "EMAIL_URL's timeout='soon' is not a number of seconds"),
    ("smtps://mail.example.com?tls=1", "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: STARTTLS (port 587) or "
                                       "implicit TLS (port 465, smtps://), not both"),
])
def test_bad_email_url(monkeypatch, url, message):
    monkeypatch.setenv("EMAIL_URL", url)
    with pytest.raises(ConfigError) as error:
        smtp_settings()
    assert str(error.value) == message


def test_public_base_url(monkeypatch):
    local = dict(sends_mail=False, behind_tls_proxy=False)
    assert public_base_url(**local) == "http://127.0.0.1:8000"
    monkeypatch.setenv("WEB_PORT", "8080")
    assert public_base_url(**local) == "http://127.0.0.1:8080"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://jobs.example.com/")
    assert public_base_url(sends_mail=True, behind_tls_proxy=True) == "https://jobs.example.com"
    monkeypatch.setenv("PUBLIC_BASE_URL", "jobs.example.com")
    with pytest.raises(ConfigError):
        public_base_url(**local)


# Issue 18, item 4: the default base (the web app on loopback) only serves MOCK_MODE's .eml files.
NOT_SET = ("PUBLIC_BASE_URL is not set and {why}: the links in every email would point at http://127.0.0.1:8000, "
           "the recipient's own machine; set it to the address the public reaches this app at, such as "
           "https://jobs.example.com")
REAL_MAIL = "email is really sent (MOCK_MODE=false or MOCK_MODE_SENDS_EMAIL=true)"


@pytest.mark.parametrize("overrides, expected", [
    ({"MOCK_MODE": "false", "ANTHROPIC_API_KEY": "sk-test"}, NOT_SET.format(why=REAL_MAIL)),
    ({"MOCK_MODE_SENDS_EMAIL": "true"}, NOT_SET.format(why=REAL_MAIL)),
    ({"BEHIND_TLS_PROXY": "true"}, NOT_SET.format(why="BEHIND_TLS_PROXY=true")),
    ({"BEHIND_TLS_PROXY": "true", "PUBLIC_BASE_URL": "http://jobs.example.com"},
     "PUBLIC_BASE_URL='http://jobs.example.com' is http:// and BEHIND_TLS_PROXY=true: links in email must be "
     "https:// (the proxy's public address)"),
    *[({"BEHIND_TLS_PROXY": "true", "PUBLIC_BASE_URL": url},
       f"PUBLIC_BASE_URL={url!r} is a loopback address and BEHIND_TLS_PROXY=true: links in email would point at the "
       "recipient's own machine; set the proxy's public https:// address")
      for url in ("https://127.0.0.1:8000", "https://localhost", "https://[::1]:8443", "https://0.0.0.0")],
    ({"CAMPAIGN_FROM_EMAIL": "news at agency"},
     "CAMPAIGN_FROM_EMAIL='news at agency' is not an email address (e.g. \"Agency <hello@agency.com>\")"),
])
def test_links_that_would_not_work_in_real_mail_stop_start_up_in_one_line(overrides, expected):
    result = start(MANAGE, **overrides)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"configuration error: {expected}\n"


def test_real_mail_starts_with_an_explicit_public_base_url():
    result = start(MANAGE, MOCK_MODE="false", ANTHROPIC_API_KEY="sk-test", PUBLIC_BASE_URL="https://jobs.example.com")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("overrides, warnings", [
    ({"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, ["emails.W001", "emails.W003"]),  # given, but loopback
    ({}, ["emails.W001", "emails.W003"]),  # the default: MOCK_MODE's
    ({"PUBLIC_BASE_URL": "http://jobs.example.com", "ALLOWED_HOSTS": "jobs.example.com"}, ["emails.W003"]),
    ({"PUBLIC_BASE_URL": "https://jobs.example.com", "ALLOWED_HOSTS": "api.example.com"}, ["emails.W002"]),
    ({"PUBLIC_BASE_URL": "https://jobs.example.com", "ALLOWED_HOSTS": ".example.com"}, []),
])
def test_check_deploy_warns_about_links_that_would_not_work(overrides, warnings):
    result = start([*MANAGE, "--deploy"], **overrides)
    assert re.findall(r"\(emails\.W\d+\)", result.stderr) == [f"({w})" for w in warnings], result.stderr


def test_a_bad_email_setting_stops_start_up_in_one_line():
    result = start(MANAGE, EMAIL_URL="smtp://:secret@:25")
    assert result.returncode == 2
    assert result.stderr == "configuration error: EMAIL_URL has no host (smtp://user:password@host:587?tls=1)\n"
    assert "secret" not in result.stderr
