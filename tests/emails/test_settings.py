"""Email settings from the environment: EMAIL_URL or the separate variables; a bad one is one line."""
import pytest

from emails.conf import public_base_url, smtp_settings
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
    assert public_base_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("WEB_PORT", "8080")
    assert public_base_url() == "http://127.0.0.1:8080"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://jobs.example.com/")
    assert public_base_url() == "https://jobs.example.com"
    monkeypatch.setenv("PUBLIC_BASE_URL", "jobs.example.com")
    with pytest.raises(ConfigError):
        public_base_url()


def test_a_bad_email_setting_stops_start_up_in_one_line():
    result = start(MANAGE, EMAIL_URL="smtp://:secret@:25")
    assert result.returncode == 2
    assert result.stderr == "configuration error: EMAIL_URL has no host (smtp://user:password@host:587?tls=1)\n"
    assert "secret" not in result.stderr
