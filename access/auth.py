"""The admin API's gate: a staff session or an API token, else a JSON 401/403 (never a redirect)."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from access.models import ApiToken
from resilience.http import json_error

TOKEN_PREFIX = "rsl_"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# last_used_at is for people ("is this token still used?"): once a minute is precise enough and
# spares a write on every request.
_LAST_USED_PRECISION = timedelta(minutes=1)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name: str, *, can_write: bool = True) -> tuple[ApiToken, str]:
    """Returns the stored token and its secret, which is never stored and cannot be shown again."""
    secret = new_token()
    token = ApiToken.objects.create(name=name, key_hash=hash_token(secret), prefix=secret[:8], can_write=can_write)
    return token, secret


def token_from_header(request: HttpRequest) -> tuple[ApiToken | None, str | None]:
    """(token, None) when valid; (None, problem) when a bearer token was sent but is not valid;
    (None, None) when none was sent."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None, None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None, "the Authorization header must be 'Bearer <token>'"
    token = ApiToken.objects.filter(key_hash=hash_token(value.strip())).first()
    if token is None:
        return None, "the API token is not valid (unknown or revoked)"
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token, None


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    """Session requests that change things need Django's CSRF check (the view itself is exempt so
    that token requests, which carry no cookie, are not refused)."""
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})


def _unauthorized(message: str) -> HttpResponse:
    response = json_error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="resilience admin API"'
    return response


def admin_api(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let a request through with a valid API token or a logged-in staff user.

    Sets request.actor: who did it, for audit fields such as a dead-letter entry's resolved_by.
    """

    @csrf_exempt
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token, problem = token_from_header(request)
        if problem:
            return _unauthorized(problem)
        if token is not None:
            if request.method not in SAFE_METHODS and not token.can_write:
                return json_error(403, f"API token {token.name!r} is read-only")
            request.actor = f"token:{token.name}"
            return view(request, *args, **kwargs)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _unauthorized("authentication required: log in as staff, or send 'Authorization: Bearer <token>'")
        if not (user.is_active and user.is_staff):
            return json_error(403, f"user {user.get_username()!r} is not staff")
        if request.method not in SAFE_METHODS:
            try:
                failure = _csrf_failure(request)
            except RequestDataTooBig:  # the check reads a form body for its token
                return json_error(413, f"body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
            if failure is not None:
                return json_error(403, "CSRF check failed: send the X-CSRFToken header of your session")
        request.actor = user.get_username()
        return view(request, *args, **kwargs)

    return guarded
