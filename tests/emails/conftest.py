import pytest

from tests.emails.smtp_sink import SmtpSink


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
