"""Whose fault a refused send is, from what the server said (RFC 3463 enhanced status codes).

- the mailbox's: 5.1.x (bad address: no such user, bad domain) and 5.2.x (mailbox disabled, full, over
  its limit) at RCPT or after DATA. Writing to it again cannot work: the address is suppressed.
- ours or the message's: every other 5xx: 5.7.x (policy, relay access denied, authentication, DMARC,
  spam content), 5.3.x / 5.4.x / 5.5.x / 5.6.x (the system, routing, protocol, content), and a 5xx with
  no enhanced code at all. The recipient did nothing wrong: the send fails (retried, then dead-lettered
  with the server's words), nobody is suppressed, and the breaker counts it.
- temporary: 4xx (421 closing, 451 greylisted, 452 full for now).

A 5xx with no enhanced code is counted as ours on purpose: a bare "550 rejected" is as often a
block list or a policy as a missing mailbox, and suppressing a good address loses it for ever, while
failing a message only costs a retry and a dead letter a person can requeue.
"""
from __future__ import annotations

import re

MAILBOX, OURS, TEMPORARY = "mailbox", "ours", "temporary"

# "550 5.1.1 <x@y>: user unknown" -> class 5, subject 1. smtplib hands over the text after the code.
_ENHANCED = re.compile(rb"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")
# The subjects (X.1 addressing, X.2 mailbox) that are about the recipient's mailbox.
MAILBOX_SUBJECTS = {1, 2}


def enhanced_code(text: bytes | str) -> tuple[int, int, int] | None:
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    match = _ENHANCED.match(raw or b"")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def kind_of_reply(code: int, text: bytes | str) -> str:
    """MAILBOX, OURS or TEMPORARY for a refusal of a recipient or of a message (RCPT or after DATA).
    Refusals at the greeting, the login or MAIL FROM are never the recipient's: the caller does not ask."""
    if code < 500:
        return TEMPORARY
    enhanced = enhanced_code(text)
    if enhanced is not None and enhanced[0] == 5 and enhanced[1] in MAILBOX_SUBJECTS:
        return MAILBOX
    return OURS


def words(code: int, text: bytes | str) -> str:
    """The server's reply as a person reads it in a dead letter: '554 5.7.1 Relay access denied'."""
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(said.split())}"
