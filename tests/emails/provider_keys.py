"""Providers' webhook verification as a user configures it (ANYMAIL settings with real keys of the
right kind), and posts signed the way Postmark (basic auth) and Mailgun (HMAC-SHA256) sign theirs."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emails.providers import PROVIDERS
from resilience.mail_provider_settings import WEBHOOK_SECRET

WEBHOOK_LOGIN = "postmark-hooks:correct-horse-battery"
MAILGUN_SIGNING_KEY = "test-mailgun-signing-key-0123456789"


def _public_key_base64(key) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signing_settings(provider: str) -> dict[str, object]:
    """ANYMAIL for `provider` with its webhook verification configured (its first way of verifying)."""
    key = PROVIDERS[provider].verified_by[0]
    value: object = {
        WEBHOOK_SECRET: [WEBHOOK_LOGIN],
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": _public_key_base64(ec.generate_private_key(ec.SECP256R1())),
        "POSTAL_WEBHOOK_KEY": _public_key_base64(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "RESEND_SIGNING_SECRET": "whsec_" + base64.b64encode(b"resend-test-signing-secret!").decode(),
    }.get(key, "test-signing-secret-0123456789")
    return {key: value}


def basic_auth(login: str = WEBHOOK_LOGIN) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(login.encode()).decode()}


def mailgun_post(event_data: dict, *, key: str = MAILGUN_SIGNING_KEY) -> bytes:
    """A Mailgun tracking webhook body: the event and its signature block (HMAC of timestamp + token)."""
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                       "event-data": event_data}).encode()
