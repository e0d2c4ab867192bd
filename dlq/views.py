"""The dead-letter queue's admin API (built by issue 4's DLQ work)."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from access.auth import admin_api
from resilience.http import json_error


@admin_api
def dead_letter_queue(request: HttpRequest) -> JsonResponse:
    return json_error(501, "not built yet")


@admin_api
def requeue(request: HttpRequest) -> JsonResponse:
    return json_error(501, "not built yet")
