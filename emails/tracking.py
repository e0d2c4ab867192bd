"""Signed tokens for the open pixel, the click links and the unsubscribe link, and the rewriting of a
message's links into tracked ones.

Each purpose signs with its own salt, so a token made for one endpoint is refused by every other;
a click token names a link by its index in the message's stored links, so it can only lead where the
message itself led (no open redirect, whatever the token says).
"""
from __future__ import annotations

import html
import re
import uuid

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


def track_links(message_id: uuid.UUID, text: str, html_body: str) -> tuple[str, str, list[str]]:
    """Replace every http(s) link of both parts (bar our own: the unsubscribe link) by a click link.
    Returns the new parts and the original targets, in the order of their tokens."""
    links: list[str] = []
    own = settings.PUBLIC_BASE_URL + "/email/"

    def tracked(target: str) -> str:
        if target.startswith(own):
            return target
        if target not in links:
            links.append(target)
        return url("click", make_token(CLICK, message_id, links.index(target)))

    def in_html(match: re.Match) -> str:
        target = html.unescape(match.group(3))
        return f"{match.group(1)}{match.group(2)}{html.escape(tracked(target))}{match.group(2)}"

    html_body = _HREF.sub(in_html, html_body)
    text = _BARE_URL.sub(lambda m: tracked(m.group(0)), text)
    return text, html_body, links
