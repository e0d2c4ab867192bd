"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepts and answers as told."""
from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.system.processes import free_port


class SmtpSink:
    """rcpt_replies / data_replies: address -> SMTP reply ("550 5.1.1 no such mailbox") given at RCPT
    or after DATA instead of accepting. data_delay: seconds to wait before answering DATA (the
    message is kept first: the server took it, whatever the client saw). port: a fixed one (make chaos
    keeps to its own range); a free one by default."""

    def __init__(self, data_delay: float = 0.0, port: int | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}
        self.data_delay = data_delay
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if address in self.data_replies:
                return self.data_replies[address]
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        if self.data_delay:  # kept, but the answer comes late
            await asyncio.sleep(self.data_delay)
        return "250 2.0.0 accepted"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in m["To"]]

    def count_by_recipient(self) -> dict[str, int]:
        """Messages per address (the To header's address, without the display name)."""
        counts: dict[str, int] = {}
        with self.lock:
            for message in self.messages:
                address = message["To"].addresses[0].addr_spec
                counts[address] = counts.get(address, 0) + 1
        return counts

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
