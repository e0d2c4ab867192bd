"""The HTTP API described as OpenAPI 3.1, served at GET /api/openapi.json.

Written by hand: the views check their input in code, not through a schema library. tests/security checks
that every URL pattern under api/ (and /metrics, /healthz) is described here with the methods its view
serves, and tests/fuzz that every operation here is fuzzed.
"""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import resolve

from access.auth import Scope, admin_api
from emails.providers import WEBHOOK_PROVIDERS
from leads.idempotency import MAX_KEY_LENGTH

ERROR = {"$ref": "#/components/schemas/Error"}
ADMIN_AUTH = [{"bearerToken": []}, {"staffSession": []}]
_COUNTS = {"type": "array", "items": {"type": "integer"}}
_QUANTILE = {"oneOf": [{"type": "null"}, {"type": "object", "required": ["seconds", "atLeast"], "properties": {
    "seconds": {"type": ["number", "null"]}, "atLeast": {"type": ["number", "null"]}}}]}
CHARTS = {"type": "object", "required": ["windowStart", "minutes", "queues", "aiSpendPerHour"], "properties": {
    "windowStart": {"type": "string", "format": "date-time"}, "minuteSeconds": {"const": 60},
    "minutes": {"type": "integer"}, "generatedAt": {"type": "string", "format": "date-time"},
    "waitBucketBounds": {"type": "array", "items": {"type": "number"}},
    "queues": {"type": "array", "items": {"type": "object", "required": ["queue", "perMinute", "wait"], "properties": {
        "queue": {"type": "string"},
        "perMinute": {"type": "object", "properties": {k: _COUNTS for k in ("started", "succeeded", "failed", "rejected")}},
        "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
        "wait": {"type": "object", "properties": {"firstAttempts": {"type": "integer"}, "p50": _QUANTILE,
                                                  "p95": _QUANTILE}}}}},
    "aiSpendPerHour": {"type": "object", "properties": {
        "hours": {"type": "array", "items": {"type": "string", "format": "date-time"}},
        "cost": {"type": "array", "items": {"type": "string"}}, "requests": _COUNTS,
        "mockCost": {"type": "array", "items": {"type": "string"}}}},
}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "Invalid input; `error` names the problem", 401: "Not authenticated",
               403: "Authenticated, but not allowed (a token without the operation's scope, not staff, or a "
                    "missing permission; `missingScope` or `missingPermission` names it)",
               404: "Not found", 405: "Method not allowed (`Allow` lists the methods)", 409: "Conflict",
               413: "Body too large", 415: "Content-Type is not application/json",
               422: "Idempotency-Key reused with another body", 503: "Not configured"}
    return {str(code): {"description": reasons[code], "content": {"application/json": {"schema": ERROR}}}
            for code in codes}


def _ok(description: str, schema: dict[str, Any] | None = None, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": schema or {"type": "object"}}}}}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


UUID_STRING = {"type": "string", "format": "uuid"}
ENTRY = {"type": "object", "properties": {
    "id": UUID_STRING, "queue_name": {"type": "string"}, "job_id": {"type": "string"}, "job_data": {},
    "error_message": {"type": "string"}, "error_stack": {"type": "string"}, "attempts_made": {"type": "integer"},
    "failed_at": {"type": "string", "format": "date-time"},
    "resolved": {"type": "boolean"}, "resolved_at": {"type": ["string", "null"], "format": "date-time"},
    "resolved_by": {"type": ["string", "null"]}, "notes": {"type": ["string", "null"]}}}
LEAD = {"type": "object", "required": ["email"], "properties": {
    "email": {"type": "string", "format": "email"}, "employee_count": {"type": "integer", "minimum": 0}},
    "additionalProperties": True}


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
    admin_errors = (401, 403, 405)
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
            "schemas": {"Error": {"type": "object", "required": ["success", "error"], "properties": {
                "success": {"const": False}, "error": {"type": "string"}}}},
        },
        "paths": {
            "/api/webhooks/clay": {"post": {
                "operationId": "clayWebhook", "summary": "Accept one lead (an object) or a batch (an array)",
                "security": [{"claySecret": []}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": MAX_KEY_LENGTH}}],
                "requestBody": _json_body({"oneOf": [LEAD, {"type": "array", "items": LEAD, "minItems": 1}]}),
                "responses": {**_ok("Accepted: one job per lead", status="202"),
                              **_errors(400, 401, 405, 413, 415, 422, 503)},
            }},
            "/api/admin/dead-letter-queue": {
                "get": {"operationId": "listDeadLetters", "summary": "Unresolved entries, newest first",
                        "security": ADMIN_AUTH,
                        "parameters": [{"name": "queue", "in": "query", "schema": {"type": "string"}},
                                       {"name": "limit", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                        "responses": {**_ok("The entries and per-queue counts"), **_errors(400, *admin_errors)}},
                "patch": {"operationId": "resolveDeadLetter", "summary": "Resolve or re-open an entry",
                          "security": ADMIN_AUTH,
                          "requestBody": _json_body({"type": "object", "required": ["id", "resolved"], "properties": {
                              "id": UUID_STRING, "resolved": {"type": "boolean"}, "resolvedBy": {
                                  "type": "string", "minLength": 1, "maxLength": 100,
                                  "description": "With a token: the person who resolved it, recorded as the resolver "
                                                 "(the token in the history). From a logged-in person: their own "
                                                 "username, or left out."},
                              "notes": {"type": "string"}}}),
                          "responses": {**_ok("The entry", {"type": "object", "properties": {"job": ENTRY}}),
                                        **_errors(400, *admin_errors, 404, 413, 415)}},
                "delete": {"operationId": "deleteDeadLetter", "summary": "Delete an entry",
                           "security": ADMIN_AUTH,
                           "parameters": [{"name": "id", "in": "query", "required": True, "schema": UUID_STRING}],
                           "responses": {**_ok("Deleted"), **_errors(400, *admin_errors, 404)}},
            },
            "/api/admin/dead-letter-queue/requeue": {"post": {
                "operationId": "requeueDeadLetter", "summary": "Run the entry's job again and resolve the entry",
                "security": ADMIN_AUTH,
                "requestBody": _json_body({"type": "object", "required": ["id"], "properties": {
                    "id": UUID_STRING, "notes": {"type": "string"}}}),
                "responses": {**_ok("Requeued"), **_errors(400, *admin_errors, 404, 409, 413, 415)},
            }},
            "/api/admin/leads/{lead_id}/deliver": {
                "parameters": [{"name": "lead_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "get": {"operationId": "readDelivery", "summary": "The lead's delivery run and its steps",
                        "security": ADMIN_AUTH,
                        "responses": {**_ok("The run"), **_errors(*admin_errors, 404)}},
                "post": {"operationId": "startDelivery", "summary": "Mark the lead won and start its delivery run",
                         "security": ADMIN_AUTH,
                         "requestBody": _json_body({"type": "object", "maxProperties": 0}, required=False),
                         "responses": {**_ok("Started", status="201"), **_ok("The run it already has"),
                                       **_errors(400, *admin_errors, 404, 409, 413, 415)}},
            },
            "/api/admin/workers/health": {"get": {
                "operationId": "workersHealth", "summary": "Queues, workers and the dispatcher: the health report",
                "security": ADMIN_AUTH, "responses": {**_ok("The report"), **_errors(*admin_errors)},
            }},
            "/api/admin/workers/charts": {"get": {
                "operationId": "workersCharts",
                "summary": "The dashboard's charts: per queue, attempts started / succeeded / failed / rejected per "
                           "minute over the last 6 hours (one point a minute from windowStart), the first attempts' "
                           "wait from enqueue to start (p50, p95: the upper bound of its histogram bucket, in "
                           "seconds; atLeast for the open last bucket), and AI spend per UTC hour",
                "security": ADMIN_AUTH, "responses": {**_ok("The charts' figures", CHARTS), **_errors(*admin_errors)},
            }},
            "/api/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": ADMIN_AUTH,
                "responses": {**_ok("OpenAPI 3.1"), **_errors(*admin_errors)},
            }},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus exposition", "security": ADMIN_AUTH,
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_errors(*admin_errors)},
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
                        **_errors(400, 401, 403, 404, 405, 413, 503)},
                },
            },
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness: answers without touching the database",
                "security": [], "responses": {**_ok("Alive"), **_errors(405)},
            }},
        },
    }


# Any API token or staff session may read it: it describes, it holds no data (so no model permission).
@admin_api({"GET": ""}, scope=Scope.READ)
def openapi_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document())
