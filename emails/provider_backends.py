"""django-anymail backends that also hand the provider the send job's idempotency key, for the
providers that accept one (emails.providers: Provider.idempotency_seconds). EmailWork.call sets
`idempotency_key` on each message; a retry of the same job then finds the provider answering with
the first send instead of sending again, for as long as the provider remembers the key."""
from __future__ import annotations

from anymail.backends.brevo import EmailBackend as AnymailBrevoBackend
from anymail.backends.resend import EmailBackend as AnymailResendBackend


class ResendBackend(AnymailResendBackend):
    def build_message_payload(self, message, defaults):
        payload = super().build_message_payload(message, defaults)
        key = getattr(message, "idempotency_key", "")
        if key:  # Resend reads it from the HTTP request's headers (kept 24 hours, up to 256 characters)
            payload.headers["Idempotency-Key"] = key[:256]
        return payload


class BrevoBackend(AnymailBrevoBackend):
    def build_message_payload(self, message, defaults):
        payload = super().build_message_payload(message, defaults)
        key = getattr(message, "idempotency_key", "")
        if key:  # Brevo reads it among the message's headers in the request body (kept 15 minutes)
            payload.data.setdefault("headers", {})["idempotencyKey"] = key
        return payload
