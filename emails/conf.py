"""Email settings read from the environment (used by resilience/settings.py before Django starts:
no model imports here)."""
from __future__ import annotations

import os
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


def public_base_url() -> str:
    # By default the web app itself, on WEB_PORT: links in MOCK_MODE's .eml files then work locally.
    local = f"http://127.0.0.1:{env_int('WEB_PORT', 8000, minimum=1, maximum=65535)}"
    url = env_str("PUBLIC_BASE_URL", local).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"PUBLIC_BASE_URL={url!r} must be an http:// or https:// URL such as https://jobs.example.com")
    return url
