"""What emails/ needs of each email provider besides its settings: the anymail view that takes its
signed tracking webhooks, and whether it takes an idempotency key.

The providers, their backends and their ANYMAIL_ settings are resilience/mail_provider_settings.py's
(read before Django starts); every provider there is one here.
"""
from __future__ import annotations

from dataclasses import dataclass

from resilience.mail_provider_settings import PROVIDER_SETTINGS, ProviderSettings


def _view(module: str, name: str) -> str:
    return f"anymail.webhooks.{module}.{name}TrackingWebhookView"


# anymail's tracking webhook view of every provider we can verify the posts of (ProviderSettings.verified_by).
_TRACKING_VIEWS = {
    "amazon_ses": _view("amazon_ses", "AmazonSES"),
    "brevo": _view("brevo", "Brevo"),
    "mailersend": _view("mailersend", "MailerSend"),
    "mailgun": _view("mailgun", "Mailgun"),
    "mailjet": _view("mailjet", "Mailjet"),
    "mailtrap": _view("mailtrap", "Mailtrap"),
    "mandrill": "anymail.webhooks.mandrill.MandrillCombinedWebhookView",
    "postal": _view("postal", "Postal"),
    "postmark": _view("postmark", "Postmark"),
    "resend": _view("resend", "Resend"),
    "sendgrid": _view("sendgrid", "SendGrid"),
    "sparkpost": _view("sparkpost", "SparkPost"),
    "unisender_go": _view("unisender_go", "UnisenderGo"),
}
# How long the provider remembers an idempotency key (seconds); the others take none. Brevo keeps an
# "idempotencyKey" for 15 minutes, Resend an Idempotency-Key for 24 hours (emails.provider_backends).
_IDEMPOTENCY_SECONDS = {"brevo": 15 * 60, "resend": 24 * 3600}


@dataclass(frozen=True)
class Provider:
    settings: ProviderSettings
    tracking_view: str = ""
    idempotency_seconds: int = 0  # 0: it takes no idempotency key

    @property
    def verified_by(self) -> tuple[str, ...] | None:
        return self.settings.verified_by


PROVIDERS: dict[str, Provider] = {
    name: Provider(spec, _TRACKING_VIEWS.get(name, ""), _IDEMPOTENCY_SECONDS.get(name, 0))
    for name, spec in PROVIDER_SETTINGS.items()
}
WEBHOOK_PROVIDERS = tuple(name for name, provider in PROVIDERS.items() if provider.verified_by)
