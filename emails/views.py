"""Public endpoints reached from inside emails: the open pixel, click links and unsubscribe. Every
token is signed for its own purpose; a token that is not (tampered, made for another endpoint, or
naming a link the message did not contain) gets 404."""
from __future__ import annotations

import base64

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from emails import services, tracking

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _read(purpose: str, token: str):
    found = tracking.read_token(purpose, token)
    if found is None:
        raise Http404("unknown link")
    return found


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    message_id, _ = _read(tracking.OPEN, token)
    if request.method == "GET" and not services.record_open(message_id):
        raise Http404("unknown message")
    return _no_store(HttpResponse(PIXEL, content_type="image/gif"))


@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    message_id, link = _read(tracking.CLICK, token)
    if link is None:
        raise Http404("unknown link")
    # HEAD (a link checker) learns where it leads without counting a click.
    count = services.record_click if request.method == "GET" else services.link_target
    target = count(message_id, link)
    if target is None:
        raise Http404("unknown link")
    return _no_store(HttpResponseRedirect(target))


@csrf_exempt  # RFC 8058: mail providers POST from outside, with no session and no CSRF token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (a link scanner following the link unsubscribes nobody), or says the address
    is unsubscribed when it is; POST unsubscribes, from that button or from a provider's one-click
    (List-Unsubscribe-Post). Idempotent."""
    message_id, _ = _read(tracking.UNSUBSCRIBE, token)
    if request.method == "POST":
        email = services.unsubscribe(message_id)
        if email is None:
            raise Http404("unknown message")
        return _no_store(render(request, "emails/tracking/unsubscribed.html", {"email": email}))
    email = services.unsubscribed_address(message_id)
    if email is not None:  # already done: a second visit must not look as if it had not worked
        return _no_store(render(request, "emails/tracking/unsubscribed.html", {"email": email}))
    return _no_store(render(request, "emails/tracking/unsubscribe.html", {}))
