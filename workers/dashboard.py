"""The worker dashboard in Django admin (/admin/workers/)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


def dashboard(request: HttpRequest) -> HttpResponse:
    return HttpResponse("not built yet", status=501)


def dashboard_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse({}, status=501)
