"""The web server's access log, written through Python logging like every other log (settings.LOGGING's
`access_file` handler on the `hypercorn.access` logger) instead of by hypercorn itself, so that each
line is redacted like every other line (the handler's RedactSecrets filter), is one line with its
fields escaped (resilience.logfiles), and goes to var/log/web-access.log, 0600, rotated at 10 MB with 5
backups like the logs supervisord writes.

Hypercorn's worker process imports this module by name (resilience.web_server's `logger_class` is
pickled to it): it imports nothing of Django's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypercorn.logging import AccessLogAtoms, Logger

from resilience.logfiles import escape_field


class EscapedAccessLogAtoms(AccessLogAtoms):
    """Hypercorn's access-log fields (request line, path, headers ...), each escaped as the line is
    formatted (only the few the format names: the mapping also holds every environment variable)."""

    _built = False

    def __init__(self, request: Any, response: Any, request_time: float) -> None:
        super().__init__(request, response, request_time)  # copies some fields through __getitem__
        self._built = True

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return escape_field(value) if self._built and isinstance(value, str) else value


class AccessLogger(Logger):
    """Hypercorn's logger (config.logger_class) with escaped access-log fields; where the lines go is
    the `hypercorn.access` logger's handlers."""

    def atoms(self, request: Any, response: Any, request_time: float) -> Mapping[str, str]:
        return EscapedAccessLogAtoms(request, response, request_time)
