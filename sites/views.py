"""The public page of a generated site (/sites/<public_id>/), which emails link to."""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
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
