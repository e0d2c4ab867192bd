"""JSON answers for the API: every error names the problem, never an HTML page or a 500 body."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse


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


class ApiError(Exception):
    """Raised inside an API view to answer with a JSON error (see allow_methods)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra

    def response(self) -> JsonResponse:
        return json_error(self.status, self.message, **self.extra)


def allow_methods(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Answer other methods with a JSON 405, and any ApiError the view raises with its JSON error."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = json_error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()

        return checked

    return decorate


def json_object_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or ApiError 415/400 naming what is wrong with it."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, got {content_type or 'none'}")
    try:
        body = json.loads(request.body)
    except RequestDataTooBig:  # else Django answers with its HTML 400 page
        raise ApiError(413, f"body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be a JSON object, got {type(body).__name__}")
    return body


def iso_utc(moment: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC with a Z, as in the original system's JSON."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
