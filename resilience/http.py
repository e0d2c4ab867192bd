"""JSON answers for the API: every error names the problem, never an HTML page or a 500 body."""
from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def json_error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"success": False, "error": message, **extra}, status=status)


def api_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, f"no API endpoint at {request.path}")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def api_server_error(request):
    if request.path.startswith("/api/"):
        return json_error(500, "internal error; it has been logged")
    from django.views.defaults import server_error

    return server_error(request)
