from __future__ import annotations

import hmac
import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from leads.services import accept_leads
from leads.validation import validate_batch
from resilience.http import allow_methods, json_error

logger = logging.getLogger(__name__)


def _secret_matches(provided: str, expected: str) -> bool:
    return hmac.compare_digest(provided.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


@csrf_exempt
@allow_methods("POST")
def clay_webhook(request: HttpRequest) -> JsonResponse:
    """POST one lead (an object) or many (an array); 202 with the ids of the jobs created."""
    expected = settings.CLAY_WEBHOOK_SECRET
    if not expected:
        return json_error(503, "the webhook is disabled: CLAY_WEBHOOK_SECRET is not configured")
    if not _secret_matches(request.headers.get("X-Clay-Secret", ""), expected):
        return json_error(401, "missing or wrong X-Clay-Secret header")
    content_type = request.content_type or ""
    if content_type != "application/json":
        return json_error(415, f"Content-Type must be application/json, got {content_type or 'none'}")
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return json_error(400, "Content-Length is not a number")
    if declared > settings.WEBHOOK_MAX_BYTES:
        return json_error(413, f"body is larger than {settings.WEBHOOK_MAX_BYTES} bytes")
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:
        return json_error(413, f"body is larger than {settings.WEBHOOK_MAX_BYTES} bytes")
    except (UnicodeDecodeError, ValueError) as exc:
        return json_error(400, f"body is not valid JSON: {exc}")

    items = body if isinstance(body, list) else [body]
    if not items:
        return json_error(400, "no leads: the array is empty")
    if len(items) > settings.WEBHOOK_MAX_LEADS:
        return json_error(413, f"at most {settings.WEBHOOK_MAX_LEADS} leads per request, got {len(items)}")
    errors = validate_batch(items)
    if errors:
        return json_error(400, f"{len(errors)} field(s) failed validation; nothing was stored",
                          errors=[e.as_dict() for e in errors])

    submissions = accept_leads(items, source="clay-webhook")
    logger.info("clay webhook: accepted %d lead(s)", len(submissions))
    return JsonResponse(
        {
            "success": True,
            "accepted": len(submissions),
            "jobIds": [str(s.job_id) for s in submissions],
            "submissionIds": [s.pk for s in submissions],
        },
        status=202,
    )
