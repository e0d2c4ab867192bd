"""The public page of a generated site (/sites/<public_id>/), which emails link to, and its call to
action (/sites/<public_id>/book)."""
from __future__ import annotations

from email.utils import parseaddr

from django.conf import settings
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_safe

from sites.models import Site

# Stricter than the admin's policy, and set here so the middleware (which fills in only a missing
# policy) leaves it: no script at all, styles only inline (the site's own <style>), images only data:.
SITE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


@require_safe
def site_page(request: HttpRequest, public_id: str) -> HttpResponse:
    html = Site.objects.filter(public_id=public_id, status=Site.Status.PUBLISHED).values_list("html", flat=True).first()
    if html is None:
        raise Http404("no such site")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = SITE_CSP
    response["Referrer-Policy"] = "no-referrer"
    return response


class BookingRedirect(HttpResponseRedirect):
    # The target is SITE_BOOKING_URL (http/https, checked at start-up) or a mail to the agency: never a
    # value from the request or from the site's content.
    allowed_schemes = ["http", "https", "mailto"]


def booking_target() -> str:
    if settings.SITE_BOOKING_URL:
        return settings.SITE_BOOKING_URL
    return f"mailto:{parseaddr(settings.DEFAULT_FROM_EMAIL)[1]}"


@require_safe
def site_booking(request: HttpRequest, public_id: str) -> HttpResponse:
    """A site's call to action: counts the click (GET; a HEAD, a link checker, counts nothing) and
    leads to the agency's booking page."""
    published = Site.objects.filter(public_id=public_id, status=Site.Status.PUBLISHED)
    found = published.update(cta_clicks=F("cta_clicks") + 1) if request.method == "GET" else published.exists()
    if not found:
        raise Http404("no such site")
    response = BookingRedirect(booking_target())
    response["Cache-Control"] = "no-store"  # every click reaches us and is counted
    response["Referrer-Policy"] = "no-referrer"
    return response
