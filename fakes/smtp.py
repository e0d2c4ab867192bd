"""A real SMTP server on loopback (aiosmtpd) that keeps what it accepts and answers as told."""
from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from fakes.loopback import free_port


@dataclass
class Refusal:
    """Refuse recipients whose address matches `pattern` (a regex, searched) at `phase` ("rcpt", or
    "data": after the content came) with `reply`; only their first `times` tries when set (a 421 or a
    greylisting 451 "now and then"), every try otherwise."""

    phase: str
    pattern: str
    reply: str
    times: int | None = None


class SmtpSink:
    """rcpt_replies / data_replies: address -> SMTP reply ("550 5.1.1 no such mailbox") given at RCPT
    or after DATA instead of accepting; refuse(): the same by pattern (refusals, checked in order after
    those). Every refusal given is in `refused` (phase, address, reply). data_delay: seconds to wait
    before answering DATA (the message is kept first: the server took it, whatever the client saw).
    port: a fixed one (make chaos keeps to its own range); a free one by default."""

    def __init__(self, data_delay: float = 0.0, port: int | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_replies: dict[str, str] = {}
        self.refusals: list[Refusal] = []
        self.refused: list[tuple[str, str, str]] = []
        self._tries: dict[tuple[int, str], int] = {}
        self.data_delay = data_delay
        self.lock = threading.Lock()
        self.port = free_port() if port is None else port
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def refuse(self, phase: str, pattern: str, reply: str, *, times: int | None = None) -> Refusal:
        assert phase in ("rcpt", "data"), phase
        refusal = Refusal(phase, pattern, reply, times)
        with self.lock:
            self.refusals.append(refusal)
        return refusal

    def stop_refusing(self, refusal: Refusal | None = None) -> None:
        with self.lock:
            self.refusals = [] if refusal is None else [r for r in self.refusals if r is not refusal]

    def _reply_for(self, phase: str, address: str) -> str | None:
        with self.lock:
            exact = (self.rcpt_replies if phase == "rcpt" else self.data_replies).get(address)
            reply = exact
            for refusal in self.refusals:
                if reply is not None:
                    break
                if refusal.phase != phase or not re.search(refusal.pattern, address):
                    continue
                tries = self._tries[(id(refusal), address)] = self._tries.get((id(refusal), address), 0) + 1
                if refusal.times is None or tries <= refusal.times:
                    reply = refusal.reply
            if reply is not None:
                self.refused.append((phase, address, reply))
            return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if (reply := self._reply_for("rcpt", address)) is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if (reply := self._reply_for("data", address)) is not None:
                return reply
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


def main(argv: list[str] | None = None) -> None:
    """A sink to point a running system at (EMAIL_URL=smtp://127.0.0.1:PORT), to watch what it sends
    and how it takes refusals: suppressions, retries, the breaker (docs/pipeline.md, The breaker: Try the failures)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m fakes.smtp", description=main.__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--refuse", action="append", default=[], metavar="PHASE:PATTERN:REPLY",
                        help="e.g. 'rcpt:^bounce@:550 5.1.1 no such user' or 'rcpt:.:554 5.7.1 relay access denied' "
                             "(PHASE rcpt or data; PATTERN a regex searched in the address); repeatable")
    parser.add_argument("--times", type=int, default=None, help="refuse only each address's first N tries")
    args = parser.parse_args(argv)
    sink = SmtpSink(port=args.port)
    for rule in args.refuse:
        phase, pattern, reply = rule.split(":", 2)
        sink.refuse(phase, pattern, reply, times=args.times)
    sink.start()
    print(f"SMTP sink on 127.0.0.1:{args.port}; refusing: {args.refuse or 'nothing'}", flush=True)
    seen = refused = 0
    try:
        while True:
            time.sleep(0.5)
            with sink.lock:
                new, sink_refused = sink.messages[seen:], sink.refused[refused:]
                seen, refused = len(sink.messages), len(sink.refused)
            for message in new:
                print(f"accepted: to {message['To']} | {message['Subject']}", flush=True)
            for phase, address, reply in sink_refused:
                print(f"refused at {phase}: {address}: {reply}", flush=True)
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    main()
