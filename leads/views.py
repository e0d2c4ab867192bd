from __future__ import annotations

import hmac
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from leads import idempotency
from leads.services import accept_leads
from leads.validation import validate_batch
from resilience.http import BadJson, allow_methods, json_error, json_path, parse_json

logger = logging.getLogger(__name__)


def _secret_matches(provided: str, expected: str) -> bool:
    # surrogatepass: any lone surrogate a client slips in is compared as bytes, never a 500
    return hmac.compare_digest(provided.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


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
    key = request.headers.get("Idempotency-Key")
    if key is not None and (problem := idempotency.check_key(key)):
        return json_error(400, problem)
    try:
        raw = request.body
        body = parse_json(raw)
    except RequestDataTooBig:
        return json_error(413, f"body is larger than {settings.WEBHOOK_MAX_BYTES} bytes")
    except BadJson as exc:
        if not exc.problems:
            return json_error(400, exc.message)
        errors = [_field_error(problem.path) | {"message": problem.message} for problem in exc.problems]
        return json_error(400, f"{len(errors)} value(s) cannot be stored; nothing was stored", errors=errors)

    items = body if isinstance(body, list) else [body]
    if not items:
        return json_error(400, "no leads: the array is empty")
    if len(items) > settings.WEBHOOK_MAX_LEADS:
        return json_error(413, f"at most {settings.WEBHOOK_MAX_LEADS} leads per request, got {len(items)}")
    errors = validate_batch(items)
    if errors:
        return json_error(400, f"{len(errors)} field(s) failed validation; nothing was stored",
                          errors=[e.as_dict() for e in errors])

    def accept() -> tuple[int, dict[str, Any]]:
        submissions = accept_leads(items, source="clay-webhook")
        logger.info("clay webhook: accepted %d lead(s)", len(submissions))
        return 202, {
            "success": True,
            "accepted": len(submissions),
            "jobIds": [str(s.job_id) for s in submissions],
            "submissionIds": [s.pk for s in submissions],
        }

    if key is None:
        status, answer = accept()
        return JsonResponse(answer, status=status)
    try:
        status, answer, replayed = idempotency.answer_once(key, idempotency.fingerprint(raw), accept)
    except idempotency.KeyReused as exc:
        return json_error(422, str(exc))
    response = JsonResponse(answer, status=status)
    if replayed:
        # The key by its stored hash, never by value (a sender may put a secret in it).
        logger.info("clay webhook: Idempotency-Key sha256:%s... seen before; replaying its answer",
                    idempotency.key_digest(key)[:12])
        response["Idempotent-Replayed"] = "true"
    return response


def _field_error(path: tuple[str | int, ...]) -> dict[str, Any]:
    """A problem's place as the webhook's field errors give it: the lead's index in the batch (0 for
    a single object) and the field's path inside the lead."""
    if path and isinstance(path[0], int):
        return {"index": path[0], "field": json_path(path[1:])}
    return {"index": 0, "field": json_path(path)}
