"""A 400, not a 500, for admin list filters the database cannot take.

Django's admin hands the query string's filters (`?queue_name__exact=...`, the date hierarchy's
`?failed_at__year=...`) to the database as they are. A NUL or a lone surrogate, or a year no date
can hold, makes the query fail with a 500. One middleware covers every admin list, the project's
and Django's own (users, groups), present and future.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from django.db import DataError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.urls import reverse

from resilience.http import DATABASE_ERRORS, UNSTORABLE_CHAR, database_unavailable, printable

# Date parts the admin's filters and date hierarchy use, and the values Python's dates can hold.
_DATE_PART = re.compile(r"__(year|iso_year|quarter|month|week|week_day|iso_week_day|day|hour|minute|second)$")
# 9998: the date hierarchy's list of a year ends at the next year's first day, which must exist too.
_DATE_PART_RANGE = {"year": (1, 9998), "iso_year": (1, 9998), "quarter": (1, 4), "month": (1, 12), "week": (1, 53),
                    "week_day": (1, 7), "iso_week_day": (1, 7), "day": (1, 31), "hour": (0, 23), "minute": (0, 59),
                    "second": (0, 59)}


def admin_query_problem(query: QueryDict) -> str | None:
    """What in an admin page's query string the database cannot take, or None."""
    for key, values in query.lists():
        for text, what in ((key, "name"), *((value, "value") for value in values)):
            if UNSTORABLE_CHAR.search(text):
                return f"query parameter '{printable(key)}': its {what} contains a NUL or a lone surrogate"
        part = _DATE_PART.search(key)
        if part:
            low, high = _DATE_PART_RANGE[part.group(1)]
            for value in values:
                if not (re.fullmatch(r"[0-9]{1,4}", value) and low <= int(value) <= high):
                    return (f"query parameter '{printable(key)}' must be a whole number from {low} to {high}, "
                            f"got '{printable(value, 40)}'")
    return None


class AdminBadQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._prefix: str | None = None

    def _is_admin(self, request: HttpRequest) -> bool:
        if self._prefix is None:
            self._prefix = reverse("admin:index")
        return request.path.startswith(self._prefix)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._is_admin(request) and (problem := admin_query_problem(request.GET)):
            return HttpResponseBadRequest(f"Bad request: {problem}.", content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # What the check above does not foresee (a number beyond a column's range, say) still
        # comes back from the database as a DataError: the request's values, not a fault here.
        if self._is_admin(request) and isinstance(exception, DataError):
            message = printable(str(exception).splitlines()[0] if str(exception) else type(exception).__name__, 200)
            return HttpResponseBadRequest(f"Bad request: the database refused a value in it ({message}).",
                                          content_type="text/plain; charset=utf-8")
        return None


class DatabaseUnavailableMiddleware:
    """A 503 with Retry-After, not a 500 and a traceback per request, while PostgreSQL cannot be
    reached (a restart, a failover, the network): nothing was stored, and a sender that retries the
    same request later (the webhook's Idempotency-Key) loses nothing. make chaos found the 500s: Clay
    and most HTTP clients retry a 503 on their own, not always a 500. OperationalError is the database
    saying it cannot serve now (connection refused or lost, a deadlock, a statement cancelled), never
    a fault in the request itself (that is DataError or IntegrityError)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            return database_unavailable(request, exception)
        return None
