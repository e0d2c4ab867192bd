"""The HTTP API described as OpenAPI 3.1, served at GET /api/openapi.json.

Written by hand: the views check their input in code, not through a schema library. Where a view checks a
rule (a pattern, a limit, a list of queues or states), this document takes it from the view's own constant,
so the two cannot drift. tests/security checks that every URL pattern under api/ (and /metrics, /healthz) is
described here with the methods its view serves, and that the schemas allow exactly what the checks allow;
tests/fuzz that every operation here is fuzzed, and Schemathesis holds the live server to this document.
"""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.http import HttpRequest, JsonResponse
from django.urls import resolve

from access.auth import Scope, admin_api
from delivery.models import DeliveryRun, DeliveryStep
from dlq.models import DeadLetter
from dlq.views import MAX_LIMIT, RESOLVED_BY_MAX, RESOLVED_BY_PATTERN
from emails.providers import WEBHOOK_PROVIDERS
from leads.fields import ALIASES, EMPLOYEE_COUNT_MAX, EMPLOYEE_COUNT_PATTERN, MAX_LENGTH, NOT_BLANK_PATTERN
from leads.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from leads.validation import MAX_FIELDS
from monitoring import health
from resilience.http import MAX_JSON_DEPTH
from workers.models import Job

ERROR = {"$ref": "#/components/schemas/Error"}
ADMIN_AUTH = [{"bearerToken": []}, {"staffSession": []}]
# Answered by the server for any request, before a view (resilience/asgi.py's RequestLimits): a body
# that does not arrive in time, or one larger than the limit.
SERVER_ERRORS = (408, 413)
REASONS = {400: "Invalid input; `error` names the problem", 401: "Not authenticated",
           403: "Authenticated, but not allowed (a token without the operation's scope, not staff, a missing "
                "permission, or a session change without its CSRF token; `missingScope` or `missingPermission` "
                "names it)",
           404: "Not found", 405: "Method not allowed (`Allow` lists the methods)", 408: "The body did not "
           "arrive in time", 409: "Conflict", 413: "Body too large", 415: "Content-Type is not application/json",
           422: "Idempotency-Key reused with another body",
           503: "Not configured, or the database is unavailable (then `Retry-After` says when to try again)"}
STRING_HEADER = {"schema": {"type": "string", "minLength": 1}}
HEADERS = {
    405: {"Allow": {**STRING_HEADER, "required": True, "description": "The methods this path serves"}},
    503: {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": False,
                          "description": "Seconds to wait, when the database is unavailable"}},
}
ADMIN_HEADERS = {401: {"WWW-Authenticate": {**STRING_HEADER, "required": True}}}


def _errors(*codes: int, headers: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    def answer(code: int) -> dict[str, Any]:
        described = {"description": REASONS[code], "content": {"application/json": {"schema": ERROR}}}
        if code_headers := {**HEADERS.get(code, {}), **(headers or {}).get(code, {})}:
            described["headers"] = code_headers
        return described

    return {str(code): answer(code) for code in sorted({*codes, *SERVER_ERRORS})}


def _admin_errors(*codes: int) -> dict[str, Any]:
    """The admin API's: its gate's 401/403 and 405, the database's 503, and the view's own."""
    return _errors(401, 403, 405, 503, *codes, headers=ADMIN_HEADERS)


def _ok(description: str, schema: dict[str, Any] | None = None, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": schema or {"type": "object"}}}}}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], *, required: tuple[str, ...] | None = None, **more: Any) -> dict[str, Any]:
    """An object with these properties, all of them required unless `required` says which."""
    return {"type": "object", "required": list(properties if required is None else required),
            "properties": properties, **more}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    nullable = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:  # JSON Schema's enum is checked apart from its type: null must be one of its values
        nullable["enum"] = [*schema["enum"], None]
    return nullable


# What a request body may hold (resilience.http.parse_json): any JSON PostgreSQL can store, so no NUL
# in a string or a key (nor a lone surrogate, nor nesting deeper than MAX_JSON_DEPTH).
NO_NUL = "^[^\\u0000]*$"
TEXT = {"type": "string", "pattern": NO_NUL}
STORABLE = {"$ref": "#/components/schemas/StorableJson"}
STORABLE_JSON = {"description": f"Any JSON value without NUL characters, nested at most {MAX_JSON_DEPTH} deep",
                 "anyOf": [TEXT, {"type": ["number", "boolean", "null"]},
                           {"type": "array", "items": STORABLE},
                           {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": STORABLE}]}
STORABLE_OBJECT = {"propertyNames": {"pattern": NO_NUL}, "additionalProperties": STORABLE}

UUID_STRING = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
QUEUE = {"type": "string", "enum": list(settings.QUEUE_NAMES)}
_COUNTS = {"type": "array", "items": {"type": "integer"}}
_QUANTILE = {"oneOf": [{"type": "null"}, {"type": "object", "required": ["seconds", "atLeast"], "properties": {
    "seconds": {"type": ["number", "null"]}, "atLeast": {"type": ["number", "null"]}}}]}
CHARTS = {"type": "object", "required": ["windowStart", "minutes", "queues", "aiSpendPerHour"], "properties": {
    "windowStart": {"type": "string", "format": "date-time"}, "minuteSeconds": {"const": 60},
    "minutes": {"type": "integer"}, "generatedAt": {"type": "string", "format": "date-time"},
    "waitBucketBounds": {"type": "array", "items": {"type": "number"}},
    "queues": {"type": "array", "items": {"type": "object", "required": ["queue", "perMinute", "wait"], "properties": {
        "queue": QUEUE,
        "perMinute": {"type": "object", "properties": {k: _COUNTS for k in ("started", "succeeded", "failed", "rejected")}},
        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
        "wait": {"type": "object", "properties": {"firstAttempts": {"type": "integer"}, "p50": _QUANTILE,
                                                  "p95": _QUANTILE}}}}},
    "aiSpendPerHour": {"type": "object", "properties": {
        "hours": {"type": "array", "items": {"type": "string", "format": "date-time"}},
        "cost": {"type": "array", "items": {"type": "string"}}, "requests": _COUNTS,
        "mockCost": {"type": "array", "items": {"type": "string"}}}},
}}


def _column(model: type[Model], name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or null too where the model's column may be NULL."""
    return _nullable(schema) if model._meta.get_field(name).null else schema


ENTRY = _object({name: _column(DeadLetter, name, schema) for name, schema in {
    "id": UUID_STRING,
    "queue_name": {"type": "string", "description": "One of the queues, or a queue no longer configured"},
    "job_id": {"type": "string"}, "job_data": {}, "error_message": {"type": "string"},
    "error_stack": {"type": "string"}, "attempts_made": {"type": "integer", "minimum": 0}, "failed_at": TIME,
    "resolved": {"type": "boolean"}, "resolved_at": TIME, "resolved_by": {"type": "string"},
    "notes": {"type": "string"}}.items()})
QUEUE_STATS = {"type": "object", "description": "Per queue: every configured one, and any other holding entries",
               "additionalProperties": _object({name: {"type": "integer", "minimum": 0}
                                                for name in ("total", "resolved", "unresolved")})}
FIELD_ERROR = _object({"index": {"type": "integer", "minimum": 0}, "field": {"type": "string"},
                       "message": {"type": "string"}})


def _lead_field(field: str) -> dict[str, Any]:
    if field == "employee_count":
        return {"type": ["integer", "string", "null"], "minimum": 0, "maximum": EMPLOYEE_COUNT_MAX,
                "maxLength": MAX_LENGTH[field], "pattern": EMPLOYEE_COUNT_PATTERN,
                "description": "A whole number, or a count or band as text (\"1,200\", \"51-200\", "
                               "\"10,001+ employees\"); blank or null when not known"}
    return {"type": ["string", "null"], "maxLength": MAX_LENGTH[field], "pattern": NO_NUL}


# A lead: the first of the email's names that is present must hold a non-blank string; every name
# of every field, when present and not null, the field's type. Any other column is kept as it came.
_EMAIL_NAMES = ALIASES["email"]
LEAD = {"type": "object", "maxProperties": MAX_FIELDS,
        "properties": {name: _lead_field(field) for field, names in ALIASES.items() for name in names},
        **STORABLE_OBJECT,
        "anyOf": [{"required": [name],
                   "properties": {name: {"type": "string", "pattern": NOT_BLANK_PATTERN}},
                   **({"not": {"anyOf": [{"required": [earlier]} for earlier in _EMAIL_NAMES[:i]]}} if i else {})}
                  for i, name in enumerate(_EMAIL_NAMES)]}
ACCEPTED = _object({"success": {"const": True}, "accepted": {"type": "integer", "minimum": 1},
                    "jobIds": {"type": "array", "items": UUID_STRING},
                    "submissionIds": {"type": "array", "items": {"type": "integer"}}})
DEAD_LETTERS = _object({"success": {"const": True}, "jobs": {"type": "array", "items": ENTRY},
                        "count": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 0},
                        "stats": QUEUE_STATS})
RUN = _object({
    "id": {"type": "integer"}, "lead_id": {"type": "integer"},
    "state": {"type": "string", "enum": list(DeliveryRun.State.values)},
    "current_step": {"type": "integer", "minimum": 1}, "started_by": {"type": "string"},
    "error": {"type": "string"}, "created_at": TIME, "finished_at": _nullable(TIME),
    "steps": {"type": "array", "items": _object({
        "position": {"type": "integer", "minimum": 1}, "name": {"type": "string"}, "title": {"type": "string"},
        "state": {"type": "string", "enum": list(DeliveryStep.State.values)},
        "attempts": {"type": "integer", "minimum": 0}, "waits": {"type": "integer", "minimum": 0},
        "waiting_for": {"type": "string"}, "started_at": _nullable(TIME), "finished_at": _nullable(TIME),
        "last_error": {"type": "string"}, "job_id": _nullable(UUID_STRING)})}})
DELIVERY = _object({"success": {"const": True}, "run": RUN})
STATUS = {"type": "string", "enum": list(health.STATUSES)}
COUNT = {"type": "integer", "minimum": 0}
REASONS_LIST = {"type": "array", "items": {"type": "string"}}
HEALTH = _object({
    "success": {"const": True}, "overall": STATUS, "reasons": REASONS_LIST,
    "workers": {"type": "array", "items": _object({
        "name": QUEUE, "healthy": {"type": "boolean"}, "waiting": COUNT, "active": COUNT, "completed": COUNT,
        "failed": COUNT, "failureRate": {"type": "number", "minimum": 0, "maximum": 100}, "rejected": COUNT,
        "status": STATUS, "reasons": REASONS_LIST, "consumers": COUNT, "paused": {"type": "boolean"},
        "pausedReason": {"type": ["string", "null"]}, "rateLimitedForSeconds": {"type": ["number", "null"]},
        "recent": _object({"windowMinutes": {"type": "integer", "minimum": 1}, "completed": COUNT, "failed": COUNT,
                           "rejected": COUNT, "errors": COUNT,
                           "failureRate": {"type": "number", "minimum": 0, "maximum": 100},
                           "failureRateJudged": {"type": "boolean"}, "minSample": COUNT}),
        "lastProcessedAt": _nullable(TIME)})},
    "summary": _object({"totalActive": COUNT, "totalCompleted": COUNT, "totalFailed": COUNT,
                        "allHealthy": {"type": "boolean"}, "totalWaiting": COUNT, "totalRejected": COUNT,
                        "pausedQueues": {"type": "array", "items": QUEUE}}),
    "dispatcher": _object({"leader": {"type": ["string", "null"]}, "live": {"type": "boolean"},
                           "lastHeartbeatAt": _nullable(TIME)}),
    "timestamp": TIME})


def document() -> dict[str, Any]:
    return _with_required_scopes(_document())


def _with_required_scopes(spec: dict[str, Any]) -> dict[str, Any]:
    """Each admin operation names what its view requires (access.auth.admin_api), read from the view
    itself so the document cannot say other than what is enforced: the token's scope (in the bearer
    requirement, as OpenAPI 3.1 allows role names there, in x-required-scope and in the description)
    and a session's model permission."""
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or operation.get("security") != ADMIN_AUTH:
                continue
            view = resolve(re.sub(r"\{\w+\}", "0", path)).func
            scope = view.required_scopes[method.upper()]
            permission = view.required_permissions.get(method.upper())
            operation["security"] = [{"bearerToken": [scope]}, {"staffSession": []}]
            operation["x-required-scope"] = scope
            needs = (f"Needs an API token with the scope `{scope}`, or a staff session"
                     + (f" with the permission `{permission}`." if permission else "."))
            operation["description"] = f"{operation['description']}\n\n{needs}" if "description" in operation else needs
    return spec


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Resilience HTTP API", "version": "1",
                 "description": "The Clay webhook, the email providers' webhooks, the admin API, Prometheus "
                                "metrics and the liveness check. "
                                "Every error is JSON: {\"success\": false, \"error\": \"<what is wrong>\"}."},
        "components": {
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer",
                                "description": "manage.py create_api_token NAME [--scope read|dlq|deliver|admin] "
                                               "(repeatable or a comma list; read alone when not given). Each "
                                               "operation names the scope it needs (x-required-scope)"},
                "staffSession": {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
                                 "description": "An admin login; changes also need the X-CSRFToken header"},
                "claySecret": {"type": "apiKey", "in": "header", "name": "X-Clay-Secret"},
                # The email providers' webhooks: no login, no token; the provider's own signature.
                "providerSignature": {
                    "type": "apiKey", "in": "header", "name": "Signature",
                    "description": "The email provider's signature of the post, checked by django-anymail with "
                                   "the provider's key: Mailgun's signature block (HMAC-SHA256, "
                                   "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY), SendGrid's "
                                   "X-Twilio-Email-Event-Webhook-Signature (ECDSA), Resend's svix-signature, "
                                   "MailerSend's Signature, Postal's X-Postal-Signature, Mandrill's "
                                   "X-Mandrill-Signature, Unisender Go's auth field"},
                "providerBasicAuth": {
                    "type": "http", "scheme": "basic",
                    "description": "ANYMAIL_WEBHOOK_SECRET (user:password) in the webhook URL given to the provider: "
                                   "the only check for providers that do not sign (Postmark, Amazon SES through "
                                   "SNS, Brevo, Mailjet, Mailtrap, SparkPost), an extra one for the others"},
            },
            "schemas": {
                "Error": _object({"success": {"const": False}, "error": {"type": "string"},
                                  "errors": {"type": "array", "items": FIELD_ERROR,
                                             "description": "The webhook's: each value it refused, and where"},
                                  "missingPermission": {"type": "string"}, "missingScope": {"type": "string"}},
                                 required=("success", "error"), additionalProperties=False),
                "StorableJson": STORABLE_JSON,
            },
        },
        "paths": {
            "/api/webhooks/clay": {"post": {
                "operationId": "clayWebhook", "summary": "Accept one lead (an object) or a batch (an array)",
                "description": "Each lead needs an email (under any of its names); the fields the API knows are "
                               "checked under every name they go by; any other column is kept as it came. "
                               f"At most {settings.WEBHOOK_MAX_LEADS} leads (more: 413) and "
                               f"{settings.WEBHOOK_MAX_BYTES} bytes a request.",
                "security": [{"claySecret": []}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "description": "Sent again with the same body within 24 h: the first answer again "
                                               "(Idempotent-Replayed: true), nothing stored twice; with another "
                                               "body: 422. Printable ASCII, not only spaces.",
                                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                                           "pattern": KEY_PATTERN}}],
                "requestBody": _json_body({"oneOf": [LEAD, {"type": "array", "items": LEAD, "minItems": 1}]}),
                "responses": {"202": {"description": "Accepted: one job per lead",
                                      "headers": {"Idempotent-Replayed": {
                                          "required": False, "schema": {"const": "true"},
                                          "description": "This is the answer first given to the same key"}},
                                      "content": {"application/json": {"schema": ACCEPTED}}},
                              **_errors(400, 401, 405, 413, 415, 422, 503)},
            }},
            "/api/admin/dead-letter-queue": {
                "get": {"operationId": "listDeadLetters", "summary": "Unresolved entries, newest first",
                        "security": ADMIN_AUTH,
                        "parameters": [{"name": "queue", "in": "query", "schema": QUEUE,
                                        "description": "One queue's entries; a queue no longer configured is "
                                                       "accepted too while it holds entries"},
                                       {"name": "limit", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}],
                        "responses": {**_ok("The entries and per-queue counts", DEAD_LETTERS),
                                      **_admin_errors(400)}},
                "patch": {"operationId": "resolveDeadLetter", "summary": "Resolve or re-open an entry",
                          "security": ADMIN_AUTH,
                          "requestBody": _json_body(_object({
                              "id": UUID_STRING, "resolved": {"type": "boolean"}, "resolvedBy": {
                                  "type": ["string", "null"], "minLength": 1, "maxLength": RESOLVED_BY_MAX,
                                  "pattern": RESOLVED_BY_PATTERN,
                                  "description": "With a token: the person who resolved it, recorded as the resolver "
                                                 "(the token in the history); printable, not only spaces. From a "
                                                 "logged-in person: their own username, or left out (anyone else: "
                                                 "400)."},
                              "notes": _nullable(TEXT)}, required=("id", "resolved"), **STORABLE_OBJECT)),
                          "responses": {**_ok("The entry", _object({"success": {"const": True}, "job": ENTRY})),
                                        **_admin_errors(400, 404, 413, 415)}},
                "delete": {"operationId": "deleteDeadLetter", "summary": "Delete an entry",
                           "security": ADMIN_AUTH,
                           "parameters": [{"name": "id", "in": "query", "required": True, "schema": UUID_STRING}],
                           "responses": {**_ok("Deleted", _object({"success": {"const": True},
                                                                   "deleted": UUID_STRING})),
                                         **_admin_errors(400, 404)}},
            },
            "/api/admin/dead-letter-queue/requeue": {"post": {
                "operationId": "requeueDeadLetter", "summary": "Run the entry's job again and resolve the entry",
                "security": ADMIN_AUTH,
                "requestBody": _json_body(_object({"id": UUID_STRING, "notes": _nullable(TEXT)}, required=("id",),
                                                  **STORABLE_OBJECT)),
                "responses": {**_ok("Requeued", _object({
                    "success": {"const": True}, "job": ENTRY, "jobId": UUID_STRING,
                    "state": {"type": "string", "enum": list(Job.State.values)}})),
                    **_admin_errors(400, 404, 409, 413, 415)},
            }},
            "/api/admin/dead-letter-queue/bulk": {"post": {
                "operationId": "bulkDeadLetters",
                "summary": "Requeue or resolve every unresolved entry a filter selects (at most BULK_ACTION_MAX)",
                "security": ADMIN_AUTH,
                "requestBody": _json_body(_object({
                    "action": {"type": "string", "enum": ["requeue", "resolve"]},
                    "queue": _nullable({**QUEUE, "description": "One queue's entries; a queue no longer "
                                                                "configured is accepted too while it holds entries"}),
                    "error_contains": _nullable({"type": "string", "minLength": 1, "maxLength": 500,
                                                 "pattern": r"\S"}),
                    "failed_after": _nullable({**TIME, "maxLength": 64}),
                    "failed_before": _nullable({**TIME, "maxLength": 64}),
                    "notes": _nullable(TEXT),
                    "dry_run": {"type": "boolean", "description": "Only count what the filter selects"}},
                    required=("action",), additionalProperties=False)),
                "responses": {**_ok("What was matched and done", _object({
                    "success": {"const": True}, "action": {"type": "string"}, "matched": {"type": "integer"},
                    "dry_run": {"type": "boolean"}, "requeued": {"type": "integer"}, "resolved": {"type": "integer"},
                    "refused": {"type": "array", "items": _object({"id": UUID_STRING, "error": {"type": "string"}})}},
                    required=("success", "action", "matched", "dry_run"))),
                    **_admin_errors(400, 409, 413, 415)},
            }},
            "/api/admin/leads/{lead_id}/deliver": {
                "parameters": [{"name": "lead_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "get": {"operationId": "readDelivery", "summary": "The lead's delivery run and its steps",
                        "security": ADMIN_AUTH,
                        "responses": {**_ok("The run", DELIVERY), **_admin_errors(404)}},
                "post": {"operationId": "startDelivery", "summary": "Mark the lead won and start its delivery run",
                         "description": "No body, or an empty JSON object",
                         "security": ADMIN_AUTH,
                         "requestBody": _json_body({"type": "object", "maxProperties": 0}, required=False),
                         "responses": {**_ok("Started", _object({"success": {"const": True},
                                                                 "created": {"const": True}, "run": RUN}),
                                             status="201"),
                                       **_ok("The run it already has", _object({"success": {"const": True},
                                                                                "created": {"const": False},
                                                                                "run": RUN})),
                                       **_admin_errors(400, 404, 409, 413, 415)}},
            },
            "/api/admin/workers/health": {"get": {
                "operationId": "workersHealth", "summary": "Queues, workers and the dispatcher: the health report",
                "security": ADMIN_AUTH, "responses": {**_ok("The report", HEALTH), **_admin_errors()},
            }},
            "/api/admin/workers/charts": {"get": {
                "operationId": "workersCharts",
                "summary": "The dashboard's charts: per queue, attempts started / succeeded / failed / rejected per "
                           "minute over the last 6 hours (one point a minute from windowStart), the first attempts' "
                           "wait from enqueue to start (p50, p95: the upper bound of its histogram bucket, in "
                           "seconds; atLeast for the open last bucket), and AI spend per UTC hour",
                "security": ADMIN_AUTH, "responses": {**_ok("The charts' figures", CHARTS), **_admin_errors()},
            }},
            "/api/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": ADMIN_AUTH,
                "responses": {**_ok("OpenAPI 3.1", {"type": "object", "required": ["openapi", "info", "paths"]}),
                              **_admin_errors()},
            }},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus exposition", "security": ADMIN_AUTH,
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_admin_errors()},
            }},
            "/email/events/{provider}/": {
                "parameters": [{"name": "provider", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": list(WEBHOOK_PROVIDERS)}}],
                "post": {
                    "operationId": "emailProviderEvents",
                    "summary": "An email provider's tracking webhook (django-anymail): each event recorded once "
                               "per event id; a hard bounce, a complaint or an unsubscribe suppresses the address. "
                               "Served for EMAIL_PROVIDER only, once its verification is configured",
                    "security": [{"providerSignature": []}, {"providerBasicAuth": []}],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
                    "responses": {**_ok("Verified; the events and how many were new", {
                        "type": "object", "properties": {"success": {"const": True}, "events": {"type": "integer"},
                                                         "recorded": {"type": "integer"}}}),
                        **_errors(400, 401, 403, 404, 405, 413, 503, headers={
                            401: {"WWW-Authenticate": {**STRING_HEADER, "required": True}}})},
                },
            },
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness: answers without touching the database",
                "security": [], "responses": {**_ok("Alive", _object({"status": {"const": "ok"}})), **_errors(405)},
            }},
        },
    }


# Any API token or staff session may read it: it describes, it holds no data (so no model permission).
@admin_api({"GET": ""}, scope=Scope.READ)
def openapi_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
