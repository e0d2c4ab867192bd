"""Email backends: Django's SMTP backend that remembers whether the message itself went out, and a
file backend that writes one .eml per message (MOCK_MODE)."""
from __future__ import annotations

import os
import re
import smtplib
import time
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend


class _PhaseMixin:
    data_started = False

    def data(self, msg):
        # From here on the server may accept the message even if we never read its answer.
        self.data_started = True
        return super().data(msg)


class _SMTP(_PhaseMixin, smtplib.SMTP):
    pass


class _SMTP_SSL(_PhaseMixin, smtplib.SMTP_SSL):
    pass


class SMTPBackend(DjangoSMTPBackend):
    """Django's SMTP backend (settings, STARTTLS, SSL, login unchanged). After a send, `data_started`
    says whether the DATA command was reached: a connection lost before it means the message was
    certainly not accepted (safe to retry); lost after it, the server may have it."""

    data_started = False

    @property
    def connection_class(self):
        return _SMTP_SSL if self.use_ssl else _SMTP

    def _send(self, email_message) -> bool:
        try:
            return super()._send(email_message)
        finally:
            self.data_started = bool(self.connection is not None and self.connection.data_started)


class FileBackend(BaseEmailBackend):
    """Writes each message to EMAIL_FILE_PATH/<time>-<message id>.eml (written whole, then renamed,
    so a reader never sees half a file). Opens in any mail client."""

    def __init__(self, file_path: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.file_path = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        self.file_path.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            ident = re.sub(r"[^A-Za-z0-9@._-]", "", message.extra_headers.get("Message-ID", "")) or f"{time.time_ns()}"
            path = self.file_path / f"{time.strftime('%Y%m%d-%H%M%S')}-{ident}.eml"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(message.message().as_bytes(linesep="\r\n"))
            tmp.replace(path)
        return len(email_messages)
