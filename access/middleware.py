"""Security headers and the client's address, for every request; the username login throttling keeps."""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware


def _with_policy(response: HttpResponse) -> HttpResponse:
    if settings.CONTENT_SECURITY_POLICY and "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
    return response


@sync_and_async_middleware
def content_security_policy(get_response):
    """settings.CONTENT_SECURITY_POLICY on every response that has none of its own (sync or async
    stack alike, so it costs no thread switch under an ASGI server)."""
    if iscoroutinefunction(get_response):
        async def middleware(request: HttpRequest) -> HttpResponse:
            return _with_policy(await get_response(request))
    else:
        def middleware(request: HttpRequest) -> HttpResponse:
            return _with_policy(get_response(request))
    return middleware


def client_ip(request: HttpRequest) -> str | None:
    """The address login throttling counts failures against (settings.AXES_CLIENT_IP_CALLABLE).

    Behind the TLS proxy every request comes from the proxy, so the client is the last entry of
    X-Forwarded-For: the one the proxy appended. Earlier entries are whatever the client sent and
    prove nothing. Without the proxy, the peer's address.
    """
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")


def login_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username login throttling records and locks out (settings.AXES_USERNAME_CALLABLE): the one
    typed, redacted. A secret pasted into the username field (a password, a token) would otherwise be
    kept in the login records and listed in the admin."""
    from resilience.redaction import redact_text

    source = credentials if credentials else getattr(request, "data", request.POST)
    username = source.get(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")) if source else None
    return redact_text(username) if isinstance(username, str) else username
