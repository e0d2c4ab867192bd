"""`manage.py check --deploy`: links in real mail must reach this app from the recipient's machine.

Start-up already refuses a missing PUBLIC_BASE_URL when mail really goes out, and a loopback or
http:// one behind the TLS proxy; these warnings catch the rest before a campaign goes out with them.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.http.request import validate_host

from resilience.mail_settings import is_loopback_host

_HINT = "Set PUBLIC_BASE_URL to the public https:// address of this app (e.g. https://jobs.example.com)."


@register(Tags.security, deploy=True)
def check_public_base_url(app_configs, **kwargs) -> list[CheckMessage]:
    url = settings.PUBLIC_BASE_URL
    parts = urlsplit(url)
    host = parts.hostname or ""
    warnings: list[CheckMessage] = []
    if is_loopback_host(host):
        warnings.append(Warning(f"PUBLIC_BASE_URL ({url}) is a loopback address: every click, open and unsubscribe "
                                "link in an email would point at the recipient's own machine.",
                                hint=_HINT, id="emails.W001"))
    elif not validate_host(host, settings.ALLOWED_HOSTS):
        warnings.append(Warning(f"PUBLIC_BASE_URL's host {host!r} is not in ALLOWED_HOSTS: every click, open and "
                                "unsubscribe link in an email would be answered 400.",
                                hint="Add it to ALLOWED_HOSTS.", id="emails.W002"))
    if parts.scheme != "https":
        warnings.append(Warning(f"PUBLIC_BASE_URL ({url}) is not https://: links in email go over plain HTTP, and "
                                "one-click unsubscribe (RFC 8058) asks for https.", hint=_HINT, id="emails.W003"))
    return warnings
