"""The admin API's worker endpoints."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from prometheus_client import CONTENT_TYPE_LATEST

from access.auth import Scope, admin_api
from monitoring.health import health_report
from monitoring.metrics import render

# The health figures are the job ledger's: a session caller needs to be allowed to view jobs.
VIEW_JOBS = "workers.view_job"


@admin_api({"GET": VIEW_JOBS}, scope=Scope.READ)
def workers_health(request: HttpRequest) -> JsonResponse:
    return JsonResponse(health_report())


@admin_api({"GET": VIEW_JOBS}, scope=Scope.READ)
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape: `authorization: {credentials: <token>}` in the scrape config (a token that
    may only read: `manage.py create_api_token prometheus --scope read`)."""
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
