"""The admin API's gate: a staff session with the model permission the request needs, or an API token,
else a JSON 401/403 (never a redirect)."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from access.models import ApiToken, Scope, default_scopes, normalize_scopes
from resilience.http import allow_methods, json_error

TOKEN_PREFIX = "rsl_"
# A token's service user is named after it. Django's username validator refuses ':', so no person
# can be made (by createsuperuser or the admin's user form) with a name that passes for a token's.
SERVICE_USER_PREFIX = "token:"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# last_used_at is for people ("is this token still used?"): once a minute is precise enough and
# spares a write on every request.
_LAST_USED_PRECISION = timedelta(minutes=1)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # surrogatepass: a header the test client (or an ASGI server) hands over undecodable must fail
    # the lookup like any wrong token, not raise.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def service_user(token_name: str) -> AbstractBaseUser:
    """The user a token's changes are recorded under (the admin's history needs a user).

    It cannot log in (inactive, no usable password) and has no permissions: what a token may do is
    its scopes alone. It outlives its token, so the history keeps its name after a revoke;
    a new token of the same name takes the same identity again.
    """
    user, created = get_user_model().objects.get_or_create(
        username=f"{SERVICE_USER_PREFIX}{token_name}", defaults={"is_active": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def token_user(token: ApiToken) -> AbstractBaseUser:
    if token.user_id is None:  # a token made before tokens had users
        token.user = service_user(token.name)
        ApiToken.objects.filter(pk=token.pk).update(user=token.user)
    return token.user


def create_token(name: str, *, scopes: Iterable[str] | None = None) -> tuple[ApiToken, str]:
    """Returns the stored token and its secret, which is never stored and cannot be shown again.
    Without `scopes` the token may only read; ValueError for an unknown scope."""
    scopes = normalize_scopes(default_scopes() if scopes is None else scopes)
    if not scopes:
        raise ValueError("a token needs at least one scope")
    secret = new_token()
    token = ApiToken.objects.create(name=name, key_hash=hash_token(secret), prefix=secret[:8], scopes=scopes,
                                    user=service_user(name))
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
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(value.strip())).first()
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


def missing_permission(user: AbstractBaseUser, permissions: Iterable[str]) -> str | None:
    """The first of `permissions` ("app_label.codename") the user lacks, or None."""
    return next((perm for perm in permissions if not user.has_perm(perm)), None)


def permission_error(user: AbstractBaseUser, permission: str) -> HttpResponse:
    return json_error(403, f"user {user.get_username()!r} lacks the permission {permission}",
                      missingPermission=permission)


def scope_error(token: ApiToken, scope: str) -> HttpResponse:
    held = ", ".join(token.scopes) or "no scope"
    return json_error(403, f"API token {token.name!r} lacks the scope {scope} (it has {held}): "
                           f"make one with create_api_token NAME --scope {scope}", missingScope=scope)


def admin_api(permissions: Mapping[str, str], *,
              scope: Scope | None = None) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Let a request through with a valid API token that holds the operation's scope, or a logged-in
    staff user who holds the Django model permission `permissions` names for the request's method
    ("app_label.codename"; HEAD and OPTIONS need GET's). The methods listed are the ones the view
    serves (allow_methods answers the others with 405, after authentication), so no method reaches
    the view unchecked. Tokens have no model permissions, only scopes: reading (GET, HEAD, OPTIONS)
    needs `read`, the view's changes need `scope` (dlq, deliver, or admin for any other change).

    The view keeps what it requires as .required_scopes and .required_permissions (per method), which
    the OpenAPI document reads.

    Sets request.actor_user (the session's user, or the token's service user), request.actor (its
    name): who did it, for the admin's history and fields such as resolved_by; and request.actor_token
    (the token, or None for a logged-in person).
    """

    if callable(permissions):  # bare @admin_api: say so at import, not with a 500 at the first request
        raise TypeError("admin_api needs the permission per method, e.g. @admin_api({'GET': 'dlq.view_deadletter'})")
    if scope is None:  # every view says what a token needs: no default that would let one through
        raise TypeError("admin_api needs the scope a token needs, e.g. @admin_api({...}, scope=Scope.DLQ)")
    scope = Scope(scope)  # a typo fails at import
    writes = [method for method in permissions if method not in SAFE_METHODS]
    if writes and scope == Scope.READ:
        raise TypeError(f"admin_api: {', '.join(writes)} change things, so they need a scope other than read")
    required_scopes = {method: (Scope.READ if method in SAFE_METHODS else scope).value
                       for method in (*permissions, *(("HEAD", "OPTIONS") if "GET" in permissions else ()))}

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        view = allow_methods(*permissions)(view)

        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            token, problem = token_from_header(request)
            if problem:
                return _unauthorized(problem)
            if token is not None:
                # A method the view does not serve needs no scope: allow_methods answers it 405.
                needed_scope = required_scopes.get(request.method)
                if needed_scope and not token.has_scope(needed_scope):
                    return scope_error(token, needed_scope)
                request.actor_user = token_user(token)
                request.actor = request.actor_user.get_username()
                request.actor_token = token
                return view(request, *args, **kwargs)
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated:
                return _unauthorized("authentication required: log in as staff, or send 'Authorization: Bearer <token>'")
            if not (user.is_active and user.is_staff):
                return json_error(403, f"user {user.get_username()!r} is not staff")
            needed = permissions.get("GET" if request.method in SAFE_METHODS else request.method)
            if needed and not user.has_perm(needed):
                return permission_error(user, needed)
            if request.method not in SAFE_METHODS:
                try:
                    failure = _csrf_failure(request)
                except RequestDataTooBig:  # the check reads a form body for its token
                    return json_error(413, f"body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
                if failure is not None:
                    return json_error(403, "CSRF check failed: send the X-CSRFToken header of your session")
            request.actor_user = user
            request.actor = user.get_username()
            request.actor_token = None
            return view(request, *args, **kwargs)

        guarded = csrf_exempt(guarded)
        guarded.required_scopes = required_scopes
        guarded.required_permissions = dict(permissions)
        return guarded

    return decorate
