"""Email settings read from the environment: the SMTP server, the From addresses and the public address
links in mail point at (used by resilience/settings.py before Django starts: no app, no model imports
here). The provider's settings, when mail goes through an API: resilience/mail_provider_settings.py."""
from __future__ import annotations

import ipaddress
import os
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from resilience.env import ConfigError, env_bool, env_float, env_int, env_str

_SCHEMES = {"smtp": (False, 25), "smtp+tls": (True, 587), "submission": (True, 587), "smtps": (False, 465)}


def smtp_settings() -> dict:
    """EMAIL_HOST ... from EMAIL_URL (smtp://user:pass@host:587?tls=1, smtps://... for implicit TLS),
    or else from the separate EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
    EMAIL_USE_TLS, EMAIL_USE_SSL variables, as Django names them."""
    url = os.environ.get("EMAIL_URL", "").strip()
    timeout = env_float("EMAIL_TIMEOUT", 30.0, minimum=1.0, maximum=600.0)
    if not url:
        config = {
            "EMAIL_HOST": env_str("EMAIL_HOST", "localhost"),
            "EMAIL_PORT": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
            "EMAIL_HOST_USER": env_str("EMAIL_HOST_USER", ""),
            "EMAIL_HOST_PASSWORD": env_str("EMAIL_HOST_PASSWORD", ""),
            "EMAIL_USE_TLS": env_bool("EMAIL_USE_TLS", False),
            "EMAIL_USE_SSL": env_bool("EMAIL_USE_SSL", False),
            "EMAIL_TIMEOUT": timeout,
        }
    else:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ConfigError(f"EMAIL_URL must start with smtp://, smtp+tls:// or smtps:// (got {scheme or 'none'!r})")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"EMAIL_URL is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise ConfigError("EMAIL_URL has no host (smtp://user:password@host:587?tls=1)")
        query = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
        tls, default_port = _SCHEMES[scheme]
        flag = lambda name, default: query.get(name, "1" if default else "0") in ("1", "true", "yes", "on")  # noqa: E731
        config = {
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": port or default_port,
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": flag("tls", tls),
            "EMAIL_USE_SSL": scheme == "smtps" or flag("ssl", False),
            "EMAIL_TIMEOUT": timeout,
        }
        if "timeout" in query:
            try:
                config["EMAIL_TIMEOUT"] = float(query["timeout"])
            except ValueError:
                raise ConfigError(f"EMAIL_URL's timeout={query['timeout']!r} is not a number of seconds") from None
    if config["EMAIL_USE_TLS"] and config["EMAIL_USE_SSL"]:
        raise ConfigError("EMAIL_USE_TLS and EMAIL_USE_SSL are both on: STARTTLS (port 587) or implicit TLS "
                          "(port 465, smtps://), not both")
    return config


def is_loopback_host(host: str) -> bool:
    """localhost, *.localhost, 127.0.0.0/8, ::1 or an unspecified address: a host that, in a link
    of an email, names the machine of whoever opens it."""
    host = host.lower().rstrip(".").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def public_base_url(*, sends_mail: bool, behind_tls_proxy: bool) -> str:
    """PUBLIC_BASE_URL, where every link in an email (click, open, unsubscribe) points. The default,
    the web app on loopback, only serves MOCK_MODE's .eml files: in a real recipient's mail it names
    the recipient's own machine, so mail that really goes out needs the address set explicitly."""
    local = f"http://127.0.0.1:{env_int('WEB_PORT', 8000, minimum=1, maximum=65535)}"
    url = env_str("PUBLIC_BASE_URL", "").strip().rstrip("/")
    if not url:
        if behind_tls_proxy or sends_mail:
            why = "BEHIND_TLS_PROXY=true" if behind_tls_proxy else \
                "email is really sent (MOCK_MODE=false or MOCK_MODE_SENDS_EMAIL=true)"
            raise ConfigError(f"PUBLIC_BASE_URL is not set and {why}: the links in every email would point at "
                              f"{local}, the recipient's own machine; set it to the address the public reaches "
                              "this app at, such as https://jobs.example.com")
        return local
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_BASE_URL={url!r} must be an http:// or https:// URL such as https://jobs.example.com")
    if behind_tls_proxy and is_loopback_host(parts.hostname):
        raise ConfigError(f"PUBLIC_BASE_URL={url!r} is a loopback address and BEHIND_TLS_PROXY=true: links in email "
                          "would point at the recipient's own machine; set the proxy's public https:// address")
    if behind_tls_proxy and parts.scheme != "https":
        # RFC 8058 one-click unsubscribe asks for https; and the proxy only serves https.
        raise ConfigError(f"PUBLIC_BASE_URL={url!r} is http:// and BEHIND_TLS_PROXY=true: links in email must be "
                          "https:// (the proxy's public address)")
    return url


def sender(name: str, default: str) -> str:
    """A From address setting ("Agency <hello@agency.com>" or a bare address), refused unless it is one."""
    value = env_str(name, default).strip()
    display_name, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or ("." not in domain and domain != "localhost") or any(char in value for char in "\r\n"):
        raise ConfigError(f"{name}={value!r} is not an email address (e.g. \"Agency <hello@agency.com>\")")
    return value
