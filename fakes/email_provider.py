"""A fake email provider API on loopback that django-anymail's real backends talk to, through
ANYMAIL_POSTMARK_API_URL or ANYMAIL_MAILGUN_API_URL. It speaks Postmark's POST /email (JSON, the
X-Postmark-Server-Token header) and Mailgun's POST /v3/<domain>/messages (form, basic auth api:<key>),
and counts what it accepted per recipient: proof is counted here, never in the code's own records.

Scripted answers: `script` (status, body) pops one per request before it is accepted (a 429 or
500 means nothing was accepted); `hang_after_accept` accepts the next N requests and then answers
only after `hang_seconds` (the client has given up by then: accepted, but the sender cannot know).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from fakes.loopback import JsonServer

POSTMARK_TOKEN = "POSTMARK_API_TEST"  # Postmark's own test token: accepted, nothing delivered
MAILGUN_KEY = "test-mailgun-api-key-0123456789"


@dataclass(frozen=True)
class Accepted:
    provider: str
    to: str
    provider_message_id: str
    message_id_header: str  # ours, <msg-<id>@domain>
    metadata: dict[str, Any]

    @property
    def address(self) -> str:
        """The recipient's address alone: `to` is the header as sent, with the lead's name."""
        return parseaddr(self.to)[1]


class FakeProvider(JsonServer):
    def __init__(self) -> None:
        super().__init__(name="fake-email-provider")
        self.accepted: list[Accepted] = []
        self.refused: list[tuple[str, int]] = []
        self.script: deque[tuple[int, dict[str, Any]]] = deque()
        self.hang_after_accept = 0
        self.hang_seconds = 0.0
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.port}/"

    def respond(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if request.path.rstrip("/") == "/email":
            status, answer, hang = self._postmark(dict(request.headers), body)
        elif request.path.startswith("/v3/") and request.path.endswith("/messages"):
            status, answer, hang = self._mailgun(dict(request.headers), body)
        else:
            status, answer, hang = 404, {"message": "no such endpoint"}, 0.0
        if hang:
            time.sleep(hang)
        return status, answer, {}

    def count_by_recipient(self) -> Counter:
        with self.lock:
            # By address: the To header carries the lead's name too ("Jane Doe <jane@acme.io>").
            return Counter(item.address for item in self.accepted)

    def _take(self, provider: str, to: str, header: str, metadata: dict[str, Any], provider_id: str):
        """The scripted refusal, or accept; returns (refusal or None, hang seconds)."""
        with self.lock:
            if self.script:
                status, answer = self.script.popleft()
                self.refused.append((to, status))
                return (status, answer), 0.0
            self.accepted.append(Accepted(provider, to, provider_id, header, metadata))
            hang = 0.0
            if self.hang_after_accept > 0:
                self.hang_after_accept -= 1
                hang = self.hang_seconds
            return None, hang

    def _postmark(self, headers: dict[str, str], body: bytes):
        if headers.get("X-Postmark-Server-Token") != POSTMARK_TOKEN:
            return 401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}, 0.0
        payload = json.loads(body)
        to = payload["To"]
        header = next((h["Value"] for h in payload.get("Headers", []) if h["Name"].lower() == "message-id"), "")
        provider_id = str(uuid.uuid4())
        refusal, hang = self._take("postmark", to, header, payload.get("Metadata", {}), provider_id)
        if refusal:
            return refusal[0], refusal[1], 0.0
        return 200, {"To": to, "SubmittedAt": "2026-01-01T00:00:00Z", "MessageID": provider_id, "ErrorCode": 0,
                     "Message": "OK"}, hang

    def _mailgun(self, headers: dict[str, str], body: bytes):
        import base64

        if headers.get("Authorization") != "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode():
            return 401, {"message": "Invalid private key"}, 0.0
        form = {key: values[-1] for key, values in parse_qs(body.decode()).items()}  # one recipient, one value
        metadata = {key.removeprefix("v:"): value for key, value in form.items() if key.startswith("v:")}
        provider_id = f"<{uuid.uuid4().hex}@mg.agency.test>"
        refusal, hang = self._take("mailgun", form.get("to", ""), form.get("h:Message-ID", ""), metadata, provider_id)
        if refusal:
            return refusal[0], refusal[1], 0.0
        return 200, {"id": provider_id, "message": "Queued. Thank you."}, hang
