"""The email provider's settings, when mail goes through django-anymail: which provider sends
(EMAIL_PROVIDER), the backend that sends through it and its ANYMAIL_ settings.

Read by resilience/settings.py before Django starts: no app, no model imports here. Each provider's
settings are anymail's own names with the ANYMAIL_ prefix (ANYMAIL_POSTMARK_SERVER_TOKEN=...), so
anymail's documentation applies as written; a missing required one, or an ANYMAIL_ variable the chosen
provider does not know (a typo, another provider's), stops start-up with one line. What emails/ needs
of a provider besides its settings (its tracking webhook's view, its idempotency key) is in
emails/providers.py.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from resilience.env import ConfigError, env_str

SMTP = "smtp"
# Shared by every provider: HTTP basic auth ("user:password", several comma-separated while rotating)
# that anymail checks on every webhook post, and the only check for providers that do not sign.
WEBHOOK_SECRET = "WEBHOOK_SECRET"
# Every provider's: seconds anymail waits for the provider's answer (a send that times out may have
# been accepted: the message stays `sending`, and the retry makes it `unknown`).
REQUESTS_TIMEOUT = "REQUESTS_TIMEOUT"
# Settings anymail reads as JSON structures rather than strings.
_JSON_SETTINGS = {"AMAZON_SES_CLIENT_PARAMS", "AMAZON_SES_SESSION_PARAMS"}
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")


@dataclass(frozen=True)
class ProviderSettings:
    backend: str
    required: tuple[str, ...] = ()  # anymail settings sending needs
    optional: tuple[str, ...] = ()
    # Settings any one of which lets us verify the provider's webhook posts (WEBHOOK_SECRET is basic
    # auth: for a provider that does not sign, the only check there is). None: anymail has no
    # tracking webhook for it.
    verified_by: tuple[str, ...] | None = (WEBHOOK_SECRET,)

    def settings(self) -> tuple[str, ...]:
        return (*self.required, *self.optional, *(self.verified_by or ()), WEBHOOK_SECRET, REQUESTS_TIMEOUT)


PROVIDER_SETTINGS: dict[str, ProviderSettings] = {
    # Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    # an instance role). SNS posts the events; anymail does not verify SNS signatures, so basic auth
    # (WEBHOOK_SECRET in the subscription's URL) is what verifies them.
    "amazon_ses": ProviderSettings("anymail.backends.amazon_ses.EmailBackend",
                                   optional=("AMAZON_SES_CLIENT_PARAMS", "AMAZON_SES_SESSION_PARAMS",
                                             "AMAZON_SES_CONFIGURATION_SET_NAME", "AMAZON_SES_MESSAGE_TAG_NAME")),
    "brevo": ProviderSettings("emails.provider_backends.BrevoBackend", ("BREVO_API_KEY",), ("BREVO_API_URL",)),
    "mailersend": ProviderSettings("anymail.backends.mailersend.EmailBackend", ("MAILERSEND_API_TOKEN",),
                                   ("MAILERSEND_API_URL", "MAILERSEND_BATCH_SEND_MODE"),
                                   verified_by=("MAILERSEND_SIGNING_SECRET",)),
    "mailgun": ProviderSettings("anymail.backends.mailgun.EmailBackend", ("MAILGUN_API_KEY",),
                                ("MAILGUN_API_URL", "MAILGUN_SENDER_DOMAIN"),
                                verified_by=("MAILGUN_WEBHOOK_SIGNING_KEY",)),
    "mailjet": ProviderSettings("anymail.backends.mailjet.EmailBackend", ("MAILJET_API_KEY", "MAILJET_SECRET_KEY"),
                                ("MAILJET_API_URL",)),
    "mailtrap": ProviderSettings("anymail.backends.mailtrap.EmailBackend", ("MAILTRAP_API_TOKEN",),
                                 ("MAILTRAP_API_URL", "MAILTRAP_SANDBOX_ID")),
    "mandrill": ProviderSettings("anymail.backends.mandrill.EmailBackend", ("MANDRILL_API_KEY",),
                                 ("MANDRILL_API_URL", "MANDRILL_WEBHOOK_URL"), verified_by=("MANDRILL_WEBHOOK_KEY",)),
    "postal": ProviderSettings("anymail.backends.postal.EmailBackend", ("POSTAL_API_KEY", "POSTAL_API_URL"),
                               verified_by=("POSTAL_WEBHOOK_KEY",)),
    # Postmark does not sign its webhooks: basic auth in the webhook's URL is the check.
    "postmark": ProviderSettings("anymail.backends.postmark.EmailBackend", ("POSTMARK_SERVER_TOKEN",),
                                 ("POSTMARK_API_URL", "POSTMARK_MESSAGE_STREAM")),
    "resend": ProviderSettings("emails.provider_backends.ResendBackend", ("RESEND_API_KEY",), ("RESEND_API_URL",),
                               verified_by=("RESEND_SIGNING_SECRET",)),
    "scaleway": ProviderSettings("anymail.backends.scaleway.EmailBackend",
                                 ("SCALEWAY_SECRET_KEY", "SCALEWAY_PROJECT_ID"),
                                 ("SCALEWAY_REGION", "SCALEWAY_API_URL"), verified_by=None),
    "sendgrid": ProviderSettings("anymail.backends.sendgrid.EmailBackend", ("SENDGRID_API_KEY",), ("SENDGRID_API_URL",),
                                 verified_by=("SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY", WEBHOOK_SECRET)),
    "sparkpost": ProviderSettings("anymail.backends.sparkpost.EmailBackend", ("SPARKPOST_API_KEY",),
                                  ("SPARKPOST_API_URL", "SPARKPOST_SUBACCOUNT")),
    # Unisender Go signs each post with the API key itself.
    "unisender_go": ProviderSettings("anymail.backends.unisender_go.EmailBackend",
                                     ("UNISENDER_GO_API_KEY", "UNISENDER_GO_API_URL"),
                                     verified_by=("UNISENDER_GO_API_KEY",)),
}


def provider_settings() -> dict:
    """EMAIL_PROVIDER, the backend it sends through (None for smtp: the SMTP settings apply),
    django-anymail's ANYMAIL dict and the values in it that are secrets (for resilience.redaction)."""
    name = env_str("EMAIL_PROVIDER", SMTP).strip().lower().replace("-", "_")
    given = {key.removeprefix("ANYMAIL_"): value for key, value in os.environ.items()
             if key.startswith("ANYMAIL_") and value != ""}
    if name == SMTP:
        if given:
            raise ConfigError(f"ANYMAIL_{sorted(given)[0]} is set but EMAIL_PROVIDER is smtp: set EMAIL_PROVIDER "
                              f"to the provider it is for ({', '.join(PROVIDER_SETTINGS)})")
        return {"EMAIL_PROVIDER": SMTP, "PROVIDER_BACKEND": None, "ANYMAIL": {}, "EMAIL_PROVIDER_SECRETS": ()}
    provider = PROVIDER_SETTINGS.get(name)
    if provider is None:
        raise ConfigError(f"EMAIL_PROVIDER={name!r} is not one of smtp, {', '.join(PROVIDER_SETTINGS)}")
    unknown = sorted(set(given) - set(provider.settings()))
    if unknown:
        raise ConfigError(f"ANYMAIL_{unknown[0]} is not a setting of EMAIL_PROVIDER={name} (its settings: "
                          f"{', '.join('ANYMAIL_' + key for key in provider.settings())})")
    missing = [key for key in provider.required if key not in given]
    if missing:
        raise ConfigError(f"EMAIL_PROVIDER={name} needs ANYMAIL_{missing[0]} (see docs/configuration.md, Email providers)")
    anymail = {key: _parse(key, value) for key, value in given.items()}
    if WEBHOOK_SECRET in anymail:
        anymail[WEBHOOK_SECRET] = _basic_auth(anymail[WEBHOOK_SECRET])
    secrets = [value for key, value in given.items() if _SECRET_NAME.search(key)]
    if name == "amazon_ses":  # boto3 reads these itself; they must still never be logged
        secrets += [os.environ.get(key, "") for key in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    return {"EMAIL_PROVIDER": name, "PROVIDER_BACKEND": provider.backend, "ANYMAIL": anymail,
            "EMAIL_PROVIDER_SECRETS": tuple(s for part in secrets for s in part.split(",") if s)}


def _parse(key: str, value: str):
    if key == REQUESTS_TIMEOUT:
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"ANYMAIL_REQUESTS_TIMEOUT={value!r} is not a number of seconds") from None
        if not 1 <= seconds <= 600:
            raise ConfigError(f"ANYMAIL_REQUESTS_TIMEOUT={seconds:g} must be between 1 and 600 seconds")
        return seconds
    if key not in _JSON_SETTINGS:
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigError(f"ANYMAIL_{key} is not JSON (e.g. {{\"region_name\": \"eu-west-1\"}})") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"ANYMAIL_{key} must be a JSON object")
    return parsed


def _basic_auth(value: str) -> list[str]:
    logins = [login.strip() for login in value.split(",") if login.strip()]
    for login in logins:
        user, colon, password = login.partition(":")
        if not colon or not user or len(password) < 8:
            raise ConfigError("ANYMAIL_WEBHOOK_SECRET must be user:password (the password at least 8 characters; "
                              "several comma-separated while rotating)")
    return logins
