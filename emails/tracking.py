"""Signed tokens for the open pixel, the click links and the unsubscribe link, and the rewriting of a
message's links into tracked ones: only the links its template's author wrote.

Each purpose signs with its own salt, so a token made for one endpoint is refused by every other;
a click token names a link by its index in the message's stored links, so it can only lead where the
message itself led (no open redirect, whatever the token says).
"""
from __future__ import annotations

import html
import re
import uuid
from collections.abc import Collection, Iterable

from django.conf import settings
from django.core import signing

OPEN, CLICK, UNSUBSCRIBE = "emails.open", "emails.click", "emails.unsubscribe"

_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'\s<>]+)\2""", re.IGNORECASE)
_BARE_URL = re.compile(r"""https?://[^\s<>"']+[^\s<>"'.,;:!?)\]]""")


def _signer(purpose: str) -> signing.Signer:
    return signing.Signer(key=settings.EMAIL_SIGNING_KEY, salt=purpose)


def make_token(purpose: str, message_id: uuid.UUID, link: int | None = None) -> str:
    value = message_id.hex if link is None else f"{message_id.hex}.{link}"
    return _signer(purpose).sign(value)


def read_token(purpose: str, token: str) -> tuple[uuid.UUID, int | None] | None:
    """(message id, link index or None), or None for a token this app did not sign for `purpose`."""
    try:
        value = _signer(purpose).unsign(token)
    except signing.BadSignature:
        return None
    hex_id, _, link = value.partition(".")
    try:
        return uuid.UUID(hex=hex_id), (int(link) if link else None)
    except ValueError:
        return None


def url(name: str, token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/email/{name}/{token}"


def open_pixel_url(message_id: uuid.UUID) -> str:
    return url("open", make_token(OPEN, message_id)) + ".gif"


def unsubscribe_url(message_id: uuid.UUID) -> str:
    return url("unsubscribe", make_token(UNSUBSCRIBE, message_id))


def authored_links(sources: Iterable[str], trusted: Iterable[str] = ()) -> frozenset[str]:
    """The links a template's author wrote: every http(s) URL written out whole in one of the
    template's sources (text or HTML, before rendering), and the `trusted` URLs our own code puts into
    the context (a site's link). A URL with template code inside ("https://{{ domain }}/") is not one:
    where it leads is decided by the data, not by the author."""
    written = {target for source in sources for target in _links_in(source) if "{" not in target}
    return frozenset(written | {target for target in trusted if target})


def track_links(message_id: uuid.UUID, text: str, html_body: str, *,
                authored: Collection[str]) -> tuple[str, str, list[str]]:
    """Replace the http(s) links of both rendered parts that are in `authored` (see authored_links)
    by click links; every other URL (one a lead's first name or company brought in) stays text as it
    was, so no signed redirect on our domain ever leads where a lead chose. Our own links (the
    unsubscribe link) are left as they are. Returns the new parts and the original targets, in the
    order of their tokens."""
    links: list[str] = []
    own = settings.PUBLIC_BASE_URL + "/email/"

    def tracked(target: str) -> str | None:
        if target.startswith(own) or target not in authored:
            return None
        if target not in links:
            links.append(target)
        return url("click", make_token(CLICK, message_id, links.index(target)))

    def in_html(match: re.Match) -> str:
        click = tracked(html.unescape(match.group(3)))
        return match.group(0) if click is None else f"{match.group(1)}{match.group(2)}{html.escape(click)}{match.group(2)}"

    html_body = _HREF.sub(in_html, html_body)
    text = _BARE_URL.sub(lambda m: tracked(m.group(0)) or m.group(0), text)
    return text, html_body, links


def _links_in(source: str) -> list[str]:
    # Both forms in every source: an HTML source's bare URLs and a text source's hrefs are the
    # author's too, and a link that is in no rendered part is never tracked anyway.
    return [html.unescape(m.group(3)) for m in _HREF.finditer(source)] + _BARE_URL.findall(source)
