"""POST /email/events/<provider>/: a provider's tracking webhook, verified by django-anymail as that
provider signs it (an HMAC, an ECDSA or Svix signature, or HTTP basic auth for those that do not
sign), then each event recorded once (emails.events).

Only EMAIL_PROVIDER's webhook is served, and only once its verification is configured: a webhook
nobody can verify would take anyone's word that an address bounced. Every refusal is a JSON 4xx.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from typing import Any

from anymail.exceptions import AnymailConfigurationError, AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from emails.events import METADATA_KEY, ProviderEvent, record_event
from emails.providers import PROVIDERS
from resilience.http import ApiError, allow_methods
from resilience.mail_provider_settings import WEBHOOK_SECRET
from resilience.redaction import redact

logger = logging.getLogger(__name__)
# Fields of a post that carry its signature, not the event (Mailgun's "signature" block, Mandrill's
# and legacy Mailgun's form fields): not stored.
SIGNATURE_FIELDS = {"signature", "token", "timestamp", "mandrill_events_signature"}


@csrf_exempt  # the provider posts from outside; its signature, not a session, is the check
@allow_methods("POST", "HEAD")
def provider_events(request: HttpRequest, provider: str) -> HttpResponse:
    view = _tracking_view(provider)
    if request.method == "HEAD":  # some providers check the URL answers before they post to it
        return HttpResponse()
    if settings.ANYMAIL.get(WEBHOOK_SECRET) and "HTTP_AUTHORIZATION" not in request.META:
        # Amazon SNS and Postmark send the URL's login only after a 401 that asks for it.
        error = ApiError(401, f"the {provider} webhook needs its login (ANYMAIL_WEBHOOK_SECRET)").response()
        error["WWW-Authenticate"] = 'Basic realm="email events"'
        return error
    # anymail's post() would run these two steps and send its `tracking` signal; running them here
    # tells a forged or malformed post (4xx, the provider gives up) from our own failure (500, the
    # provider posts again and the event ids keep it from counting twice).
    try:
        view.run_validators(request)
    except AnymailWebhookValidationFailure as exc:
        logger.warning("refused a %s webhook post: %s", provider, exc)
        raise ApiError(403, f"not signed by {provider}: {exc}") from None
    except Exception as exc:  # a validator that cannot even read the post has not verified it
        logger.warning("refused a %s webhook post it could not verify: %s: %s", provider, type(exc).__name__, exc)
        raise ApiError(403, f"not signed by {provider}: the post could not be verified") from None
    try:
        events = view.parse_events(request)
    # RecursionError: a body nested deeper than Python's json can parse is the post's fault, not ours.
    except (AnymailError, AnymailConfigurationError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError) as exc:
        raise ApiError(400, f"not a {provider} tracking event post: {type(exc).__name__}") from None
    new = sum(record_event(from_anymail(provider, event)) for event in events)
    return JsonResponse({"success": True, "events": len(events), "recorded": new})


def _tracking_view(provider: str):
    spec = PROVIDERS.get(provider)
    if spec is None or not spec.verified_by:
        raise ApiError(404, f"no tracking webhook for {provider!r}")
    if provider != settings.EMAIL_PROVIDER or not any(settings.ANYMAIL.get(key) for key in spec.verified_by):
        needs = " or ".join(f"ANYMAIL_{key}" for key in spec.verified_by)
        raise ApiError(404, f"the {provider} webhook is not configured (EMAIL_PROVIDER={provider} and {needs})")
    try:
        view = import_string(spec.tracking_view)()
    except AnymailConfigurationError as exc:  # e.g. a signing key that does not parse
        logger.error("the %s webhook is misconfigured: %s", provider, exc)
        raise ApiError(503, f"the {provider} webhook is misconfigured; see the log") from None
    return view


def from_anymail(provider: str, event: AnymailTrackingEvent) -> ProviderEvent:
    payload = _stored_payload(event.esp_event)
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    return ProviderEvent(
        provider=provider,
        event_id=_text(_event_id(provider, event, payload)),
        event_type=_text(event.event_type or "unknown"),
        recipient=_text(event.recipient),
        provider_message_id=_text(event.message_id),
        message_id=_uuid(metadata.get(METADATA_KEY)),
        reject_reason=_text(event.reject_reason),
        description=" ".join(_text(part) for part in (event.description, event.mta_response) if part),
        occurred_at=event.timestamp,
        hard=not _soft_bounce(provider, event.esp_event),
        payload=payload,
    )


def _event_id(provider: str, event: AnymailTrackingEvent, payload: dict[str, Any]) -> str:
    if provider == "mailgun":
        # anymail names a Mailgun event by its post's signature token, which a re-post signed anew
        # changes; the event's own id (unique within a day) with its timestamp does not.
        data = payload.get("event-data") or {}
        if data.get("id") and data.get("timestamp"):
            return f"{data['id']}@{data['timestamp']}"
    if event.event_id:
        return str(event.event_id)
    # Some providers give no id for some events (Postmark's deliveries, opens, clicks): the event as
    # posted names itself, and a re-post is the same text.
    return "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _soft_bounce(provider: str, esp_event: Any) -> bool:
    # anymail calls Postmark's SoftBounce "bounced" (a HardBounce may follow); it is not permanent.
    return provider == "postmark" and isinstance(esp_event, dict) and esp_event.get("Type") == "SoftBounce"


def _stored_payload(esp_event: Any) -> dict[str, Any]:
    if hasattr(esp_event, "lists"):  # a QueryDict (form-encoded posts)
        esp_event = {key: values[-1] if len(values) == 1 else values for key, values in esp_event.lists()}
    try:
        plain = json.loads(json.dumps(esp_event, default=str))
    except (TypeError, ValueError):
        plain = {"unparsed": str(esp_event)[:10_000]}
    if not isinstance(plain, dict):
        plain = {"event": plain}
    return _without_nul(redact({key: value for key, value in plain.items() if key not in SIGNATURE_FIELDS}))


def _text(value: Any) -> str:
    # PostgreSQL stores neither a NUL nor half a surrogate pair: a post carrying one must not become a 500.
    return str(value or "").replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _without_nul(value: Any) -> Any:
    """What PostgreSQL's JSON can store: no NUL, no half surrogate, no NaN or Infinity (Python's json
    reads and writes them; PostgreSQL refuses them as invalid JSON)."""
    if isinstance(value, dict):
        return {_text(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return _text(value) if isinstance(value, str) else value


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
