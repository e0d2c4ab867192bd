"""JSON answers for the API: every error names the problem, never an HTML page or a 500 body."""
from __future__ import annotations

import json
import logging
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def json_error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"success": False, "error": message, **extra}, status=status)


def api_not_found(request, exception=None):
    if _is_api(request):
        return json_error(404, f"no API endpoint at {request.path}")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def _is_api(request) -> bool:
    # /email/events/: providers post their webhooks there, and read JSON errors like any API client.
    return request.path.startswith(("/api/", "/email/events/")) or request.path in ("/metrics", "/healthz")


def api_bad_request(request, exception=None):
    """Django's own refusals before any view (a Host not in ALLOWED_HOSTS, too many fields ...)."""
    if _is_api(request):
        return json_error(400, f"bad request: {exception or 'refused'}"[:300])
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def api_permission_denied(request, exception=None):
    if _is_api(request):
        return json_error(403, f"forbidden: {exception or 'permission denied'}"[:300])
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def csrf_failure(request, reason: str = ""):
    if _is_api(request):
        return json_error(403, f"CSRF check failed: {reason or 'no valid token'}"[:300])
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)


# Seconds a client is told to wait before it tries again while the database cannot be reached: about
# how long a PostgreSQL restart or failover takes.
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_ERRORS = (OperationalError, InterfaceError)


def database_unavailable(request: HttpRequest, exception: BaseException) -> HttpResponse:
    """503 with Retry-After for a request PostgreSQL could not serve (down, restarting, failing over):
    an outage to wait out, not a fault of the request (that is DataError or IntegrityError) nor a 500.
    Nothing was stored, so a sender that retries (the webhook's Idempotency-Key) loses nothing. Logged
    here as one warning, not as Django's ERROR line and traceback for every 5xx."""
    reason = printable(str(exception).splitlines()[0] if str(exception) else type(exception).__name__, 200)
    logger.warning("%s %s: the database is unavailable (%s); answered 503", request.method,
                   printable(request.path, 200), reason)
    message = f"the database is unavailable; nothing was stored, try again in {DATABASE_RETRY_AFTER_SECONDS} s"
    if _is_api(request):
        response: HttpResponse = json_error(503, message)
    else:
        response = HttpResponse(f"Service unavailable: {message}.\n", status=503,
                                content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # type: ignore[attr-defined]  # django.utils.log.log_response's mark
    return response


def api_server_error(request):
    # Django calls this inside its except block, so the exception is at hand: a database out of reach
    # while a middleware looked up a session or a user, outside any view, is a 503 too.
    if isinstance(exception := sys.exc_info()[1], DATABASE_ERRORS):
        return database_unavailable(request, exception)
    if _is_api(request):
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
    """Answer other methods with a JSON 405, and any ApiError the view raises with its JSON error.

    Where GET is allowed, HEAD is too: the view answers it as a GET, and the body is dropped (its
    length stays in Content-Length, as HTTP asks).
    """
    allowed = (*methods, "HEAD") if "GET" in methods and "HEAD" not in methods else methods

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = json_error(405, f"{request.method} is not allowed here; use {' or '.join(allowed)}")
                response["Allow"] = ", ".join(allowed)
                return response
            head = request.method == "HEAD" and "HEAD" not in methods
            if head:
                request.method = "GET"  # the view dispatches on the method it knows
            try:
                response = view(request, *args, **kwargs)
            except ApiError as exc:
                response = exc.response()
            finally:
                if head:
                    request.method = "HEAD"
            if head and not response.streaming:
                response["Content-Length"] = str(len(response.content))
                response.content = b""
            return response

        return checked

    return decorate


# --- strict JSON: only what PostgreSQL can store --------------------------------------------------

# Deep enough for any real lead or request (Clay's enrichment columns nest a few levels), far below
# Python's recursion limit.
MAX_JSON_DEPTH = 32
# Enough problems to fix a batch in one round trip without an answer as large as the body.
MAX_JSON_PROBLEMS = 20
# PostgreSQL's text and jsonb refuse NUL; a lone surrogate is not Unicode and cannot be encoded.
UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


class _NotFinite(str):
    """Stands in for NaN, Infinity, -Infinity or an overflowing float (1e400) until the walk over
    the parsed value reports where it is."""


def _not_finite_constant(token: str) -> _NotFinite:
    return _NotFinite(token)


def _finite_float(token: str) -> float | _NotFinite:
    value = float(token)
    return value if math.isfinite(value) else _NotFinite(token)


@dataclass(frozen=True)
class JsonProblem:
    path: tuple[str | int, ...]  # keys and array indexes from the top of the body
    message: str

    @property
    def where(self) -> str:
        return json_path(self.path)


class BadJson(ValueError):
    """The body cannot be parsed, or holds values the database cannot store (`problems`, each with
    its path)."""

    def __init__(self, message: str, problems: tuple[JsonProblem, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.problems = message, problems


def printable(text: str, limit: int = 100) -> str:
    """`text` with NUL and lone surrogates written as \\uXXXX, cut to `limit`: safe to show and store."""
    return UNSTORABLE_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", text[:limit])


def json_path(path: tuple[str | int, ...]) -> str:
    """('leads', 3, 'company') -> 'leads[3].company'."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{printable(step)}" if out else printable(step))
    return out


def _char_problem(path: tuple[str | int, ...], char: str, what: str) -> JsonProblem:
    if char == "\x00":
        return JsonProblem(path, f"{what} contains a NUL character (\\u0000), which cannot be stored")
    return JsonProblem(path, f"{what} contains a lone surrogate (\\u{ord(char):04x}), which is not valid Unicode")


def unstorable_values(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[JsonProblem, ...]:
    """Where `value` holds what PostgreSQL refuses: NUL or lone surrogates in a string or key, a
    number that is not finite, nesting deeper than `max_depth`. Iterative, so no depth can break it."""
    problems: list[JsonProblem] = []
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack and len(problems) < MAX_JSON_PROBLEMS:
        item, path, depth = stack.pop()
        if isinstance(item, _NotFinite):
            problems.append(JsonProblem(path, f"must be a finite number, got {str.__str__(item)[:40]}"))
        elif isinstance(item, str):
            found = UNSTORABLE_CHAR.search(item)
            if found:
                problems.append(_char_problem(path, found.group(), "the value"))
        elif isinstance(item, (dict, list)):
            if depth >= max_depth:
                problems.append(JsonProblem(path, f"is nested too deeply (at most {max_depth} levels)"))
                continue
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = []
            for key, child in pairs:
                if isinstance(key, str) and (found := UNSTORABLE_CHAR.search(key)):
                    problems.append(_char_problem((*path, key), found.group(), "the key"))
                else:
                    children.append((child, (*path, key), depth + 1))
            stack.extend(reversed(children))  # depth-first in document order
    return tuple(problems)


def parse_json(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON for bodies that end up in PostgreSQL: UTF-8 only (a surrogate's raw bytes, such
    as ED A0 80, are not UTF-8), no NaN or Infinity, no float that overflows, no NUL or lone
    surrogate in a string or key, nesting at most `max_depth` deep. Else BadJson naming where."""
    try:
        text = raw.decode("utf-8-sig")  # a leading BOM is allowed (RFC 8259), nothing else
    except UnicodeDecodeError as exc:
        raise BadJson(f"body is not valid JSON: not UTF-8 at byte {exc.start} ({exc.reason})") from None
    try:
        value = json.loads(text, parse_constant=_not_finite_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadJson(f"body is nested too deeply (at most {max_depth} levels)") from None
    except ValueError as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from None
    problems = unstorable_values(value, max_depth)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadJson(f"{first.where or 'body'}: {first.message}{more}", problems)
    return value


def json_object_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or ApiError 415/400 naming what is wrong with it."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, got {content_type or 'none'}")
    try:
        body = parse_json(request.body)
    except RequestDataTooBig:  # else Django answers with its HTML 400 page
        raise ApiError(413, f"body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes") from None
    except BadJson as exc:
        raise ApiError(400, exc.message) from None
    if not isinstance(body, dict):
        raise ApiError(400, f"body must be a JSON object, got {type(body).__name__}")
    return body


def iso_utc(moment: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601 in UTC with a Z, as in the original system's JSON."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
