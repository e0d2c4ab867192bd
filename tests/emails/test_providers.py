"""Sending through django-anymail's real backends to a fake provider API on loopback (counted at the
fake), and EMAIL_PROVIDER's settings read like every other setting."""
import pytest

from emails import services
from emails.events import METADATA_KEY
from emails.models import Message
from emails.provider_backends import BrevoBackend, ResendBackend
from emails.providers import PROVIDERS
from fakes.email_provider import MAILGUN_KEY
from resilience.env import ConfigError
from resilience.mail_provider_settings import provider_settings
from tests.emails.helpers import make_lead, run_due_email_jobs
from tests.test_settings import MANAGE, start

SITE = "https://sites.example.com/sites/abc123/"


@pytest.mark.django_db(transaction=True)
def test_a_message_reaches_the_provider_once_and_keeps_its_id(fake_provider):
    lead = make_lead("jane@acme.io")
    services.queue_outreach(lead.id, SITE)

    assert run_due_email_jobs() == ["succeeded"]
    assert run_due_email_jobs() == []  # nothing left to send

    [accepted] = fake_provider.accepted
    message = Message.objects.get()
    assert (accepted.to, message.status) == ("Jane Doe <jane@acme.io>", "sent")  # the lead's name shown
    assert message.provider_message_id == accepted.provider_message_id  # the provider's id, stored
    assert accepted.message_id_header == f"<msg-{message.id}@agency.test>"
    assert accepted.metadata == {METADATA_KEY: str(message.id)}  # echoed in its events


@pytest.mark.django_db(transaction=True)
def test_a_throttled_provider_is_retried_and_the_message_still_arrives_once(fake_provider):
    fake_provider.script.extend([(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})] * 2)
    services.queue_outreach(make_lead("jane@acme.io").id, SITE)

    run_due_email_jobs()

    assert fake_provider.count_by_recipient() == {"jane@acme.io": 1}
    assert [status for _, status in fake_provider.refused] == [429, 429]
    assert Message.objects.get().status == "sent"


@pytest.mark.django_db(transaction=True)
def test_an_answer_that_never_comes_is_not_sent_again(fake_provider):
    """The provider took it but its answer did not arrive in time: it may have been sent, so the retry
    makes it `unknown` for a person instead of sending it twice (Postmark takes no idempotency key)."""
    fake_provider.hang_after_accept, fake_provider.hang_seconds = 1, 3.0
    services.queue_outreach(make_lead("jane@acme.io").id, SITE)

    run_due_email_jobs()

    assert fake_provider.count_by_recipient() == {"jane@acme.io": 1}
    assert Message.objects.get().status == "unknown"


@pytest.mark.django_db(transaction=True)
def test_mailgun_through_its_real_backend(fake_provider, settings):
    settings.EMAIL_PROVIDER, settings.EMAIL_BACKEND = "mailgun", "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {"MAILGUN_API_KEY": MAILGUN_KEY, "MAILGUN_API_URL": fake_provider.url + "v3"}
    services.queue_outreach(make_lead("jane@acme.io").id, SITE)

    run_due_email_jobs()

    [accepted] = fake_provider.accepted
    message = Message.objects.get()
    assert (accepted.provider, message.status, message.provider_message_id) == (
        "mailgun", "sent", accepted.provider_message_id)
    assert accepted.metadata == {METADATA_KEY: str(message.id)}


def _payload(backend_class, settings, **anymail):
    from django.core.mail import EmailMessage

    settings.ANYMAIL = anymail
    email = EmailMessage("Hi", "Body", "hello@agency.test", ["jane@acme.io"])
    email.idempotency_key = "email:5b1f"
    backend = backend_class()
    return backend.build_message_payload(email, backend.send_defaults)


def test_the_jobs_key_reaches_the_providers_that_take_one(settings):
    assert _payload(ResendBackend, settings, RESEND_API_KEY="re_test").headers["Idempotency-Key"] == "email:5b1f"
    assert _payload(BrevoBackend, settings, BREVO_API_KEY="xkeysib-test").data["headers"]["idempotencyKey"] == \
        "email:5b1f"


def test_every_provider_that_can_be_verified_has_a_tracking_view_and_only_those():
    """The settings (resilience/mail_provider_settings.py) and emails/providers.py describe the same
    providers: one added to the settings without its view would take posts we could not read."""
    from django.utils.module_loading import import_string

    for name, provider in PROVIDERS.items():
        assert bool(provider.tracking_view) == bool(provider.verified_by), name
        if provider.tracking_view:
            import_string(provider.tracking_view)  # a view anymail has
    # The idempotency key reaches a provider only through our own backends (emails.provider_backends).
    assert {name for name, provider in PROVIDERS.items() if provider.idempotency_seconds} == \
        {name for name, provider in PROVIDERS.items() if provider.settings.backend.startswith("emails.")}


# --- settings --------------------------------------------------------------------------------------

@pytest.fixture
def clean_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("ANYMAIL_")] + ["EMAIL_PROVIDER"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_smtp_by_default(clean_env):
    assert provider_settings()["EMAIL_PROVIDER"] == "smtp" and provider_settings()["PROVIDER_BACKEND"] is None


def test_postmark_with_its_settings(clean_env):
    clean_env.setenv("EMAIL_PROVIDER", "Postmark")
    clean_env.setenv("ANYMAIL_POSTMARK_SERVER_TOKEN", "POSTMARK_API_TEST")
    clean_env.setenv("ANYMAIL_WEBHOOK_SECRET", "hooks:a-long-password")
    clean_env.setenv("ANYMAIL_REQUESTS_TIMEOUT", "12")
    found = provider_settings()
    assert found["PROVIDER_BACKEND"] == "anymail.backends.postmark.EmailBackend"
    assert found["ANYMAIL"] == {"POSTMARK_SERVER_TOKEN": "POSTMARK_API_TEST", "WEBHOOK_SECRET": ["hooks:a-long-password"],
                                "REQUESTS_TIMEOUT": 12.0}
    assert set(found["EMAIL_PROVIDER_SECRETS"]) == {"POSTMARK_API_TEST", "hooks:a-long-password"}


@pytest.mark.parametrize("env, message", [
    ({"EMAIL_PROVIDER": "postmark"}, "EMAIL_PROVIDER=postmark needs ANYMAIL_POSTMARK_SERVER_TOKEN"),
    ({"EMAIL_PROVIDER": "mailchimp"}, "EMAIL_PROVIDER='mailchimp' is not one of smtp, amazon_ses"),
    ({"ANYMAIL_POSTMARK_SERVER_TOKEN": "x"}, "ANYMAIL_POSTMARK_SERVER_TOKEN is set but EMAIL_PROVIDER is smtp"),
    ({"EMAIL_PROVIDER": "postmark", "ANYMAIL_POSTMARK_SERVER_TOKEN": "x", "ANYMAIL_POSTMARK_SERVR_TOKEN": "x"},
     "ANYMAIL_POSTMARK_SERVR_TOKEN is not a setting of EMAIL_PROVIDER=postmark"),
    ({"EMAIL_PROVIDER": "postmark", "ANYMAIL_POSTMARK_SERVER_TOKEN": "x", "ANYMAIL_WEBHOOK_SECRET": "short"},
     "ANYMAIL_WEBHOOK_SECRET must be user:password"),
    ({"EMAIL_PROVIDER": "amazon_ses", "ANYMAIL_AMAZON_SES_CLIENT_PARAMS": "region=eu"},
     "ANYMAIL_AMAZON_SES_CLIENT_PARAMS is not JSON"),
])
def test_a_bad_provider_setting_is_one_clear_line(clean_env, env, message):
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        provider_settings()
    assert str(error.value).startswith(message)


def test_a_missing_token_stops_start_up_in_one_line_that_does_not_show_secrets(tmp_path):
    result = start(MANAGE, VAR_DIR=str(tmp_path), EMAIL_PROVIDER="mailgun", ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY="s3cret-value-1")
    assert result.returncode == 2
    assert result.stderr == "configuration error: EMAIL_PROVIDER=mailgun needs ANYMAIL_MAILGUN_API_KEY (see " \
                            "docs/configuration.md, Email providers)\n"
