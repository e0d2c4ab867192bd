import pytest

from fakes.smtp import SmtpSink


@pytest.fixture
def smtp_sink(settings):
    """A real SMTP server on loopback, and the settings that send to it."""
    sink = SmtpSink().start()
    settings.EMAIL_BACKEND = "emails.backends.SMTPBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 1.0
    settings.DEFAULT_FROM_EMAIL = "Agency <hello@agency.test>"
    settings.EMAIL_MESSAGE_ID_DOMAIN = "agency.test"
    settings.PUBLIC_BASE_URL = "http://testserver"
    yield sink
    sink.stop()


@pytest.fixture
def fake_provider(settings):
    """The fake provider API on loopback, and the settings that send to it through anymail's real
    Postmark backend (a test may switch to Mailgun's)."""
    from fakes.email_provider import POSTMARK_TOKEN, FakeProvider
    from tests.emails.provider_keys import WEBHOOK_LOGIN

    fake = FakeProvider().start()
    settings.EMAIL_PROVIDER = "postmark"
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN, "POSTMARK_API_URL": fake.url,
                        "WEBHOOK_SECRET": [WEBHOOK_LOGIN], "REQUESTS_TIMEOUT": 1.0}
    settings.DEFAULT_FROM_EMAIL = "Agency <hello@agency.test>"
    settings.EMAIL_MESSAGE_ID_DOMAIN = "agency.test"
    settings.PUBLIC_BASE_URL = "http://testserver"
    yield fake
    fake.stop()
