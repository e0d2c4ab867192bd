"""Email backends: Django's SMTP backend that remembers whether the message itself went out, and a
file backend that writes one .eml per message (MOCK_MODE)."""
from __future__ import annotations

import functools
import os
import re
import smtplib
import socket
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSMTPBackend

from resilience.logfiles import OWNER_ONLY_DIRECTORY, write_owner_only


class SendDeadline:
    """One send cut off as a whole: EMAIL_TIMEOUT bounds each socket operation (Django's meaning),
    and an SMTP session is a dozen of them (greeting, EHLO, STARTTLS and its handshake, EHLO, AUTH,
    MAIL, RCPT, DATA, the message, QUIT), each of which a slow or trickling server may stretch to the
    timeout. At the deadline the session's socket is shut down, which ends whatever it is waiting for
    at once, and no further command is sent. Connecting is bounded per address tried by EMAIL_TIMEOUT
    (socket.create_connection), before there is a socket to shut: a host whose first address never
    answers spends that long before the second is tried (resilience/settings.py counts two)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expired = threading.Event()
        self._lock = threading.Lock()
        self._session: smtplib.SMTP | None = None
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> SendDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def watch(self, session: smtplib.SMTP, sock: socket.socket) -> None:
        with self._lock:
            self._session, self._socket = session, sock
        if self._expired.is_set():  # it expired while connecting
            self._shut()

    def check(self) -> None:
        if self._expired.is_set():
            raise smtplib.SMTPServerDisconnected(f"the send took longer than EMAIL_TIMEOUT ({self.seconds:g} s) "
                                                 "as a whole and was cut off")

    def _expire(self) -> None:
        self._expired.set()
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            # After STARTTLS the session reads through a TLS socket that replaced the one connected.
            sock = getattr(self._session, "sock", None) or self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class _PhaseMixin:
    data_started = False

    def __init__(self, *args, deadline: SendDeadline | None = None, **kwargs) -> None:
        self.deadline = deadline  # before super(): its constructor connects
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        if self.deadline is not None:
            self.deadline.watch(self, sock)
        return sock

    def send(self, s):
        if self.deadline is not None:
            self.deadline.check()
        return super().send(s)

    def getreply(self):
        reply = super().getreply()
        if self.deadline is not None:
            self.deadline.check()  # a reply read across the cut-off may be a torn line ("25" of "250 ...")
        return reply

    def data(self, msg):
        # From here on the server may accept the message even if we never read its answer.
        self.data_started = True
        return super().data(msg)


class _SMTP(_PhaseMixin, smtplib.SMTP):
    pass


class _SMTP_SSL(_PhaseMixin, smtplib.SMTP_SSL):
    pass


class SMTPBackend(DjangoSMTPBackend):
    """Django's SMTP backend (settings, STARTTLS, SSL, login unchanged), with each send (connection to
    QUIT) cut off as a whole at EMAIL_TIMEOUT (SendDeadline). After a send, `data_started` says
    whether the DATA command was reached: a connection lost before it means the message was certainly
    not accepted (safe to retry); lost after it, the server may have it."""

    data_started = False
    _deadline: SendDeadline | None = None

    @property
    def connection_class(self):
        return functools.partial(_SMTP_SSL if self.use_ssl else _SMTP, deadline=self._deadline)

    def send_messages(self, email_messages) -> int:
        if self.connection is not None or not self.timeout:
            return super().send_messages(email_messages)  # a connection its caller opened and closes
        with SendDeadline(self.timeout) as self._deadline:
            try:
                return super().send_messages(email_messages)
            finally:
                self._deadline = None

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
        # Leads' addresses and their tracking links: readable by the owner only (resilience.logfiles).
        self.file_path.mkdir(mode=OWNER_ONLY_DIRECTORY, parents=True, exist_ok=True)
        for message in email_messages:
            ident = re.sub(r"[^A-Za-z0-9@._-]", "", message.extra_headers.get("Message-ID", "")) or f"{time.time_ns()}"
            path = self.file_path / f"{time.strftime('%Y%m%d-%H%M%S')}-{ident}.eml"
            tmp = path.with_suffix(".tmp")
            write_owner_only(tmp, message.message().as_bytes(linesep="\r\n"))
            tmp.replace(path)
        return len(email_messages)
