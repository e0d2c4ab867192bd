"""The admin API's worker endpoints."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from access.auth import admin_api
from resilience.http import allow_methods
from workers.health import health_report


@admin_api
@allow_methods("GET")
def workers_health(request: HttpRequest) -> JsonResponse:
    return JsonResponse(health_report())


@admin_api
@allow_methods("GET")
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse("not built yet", status=501)
