"""The web app as served by hypercorn (deploy/supervisord.conf, program `web`; resilience/web_server.py).

Hypercorn closes a connection whose request headers are not complete within WEB_HEADER_TIMEOUT_SECONDS.
The body rules are here, in front of Django, because Django's ASGI handler spools whatever body it is
given before any view runs, with no limit and no deadline of its own.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from resilience.env import load_settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resilience.settings")
load_settings_or_exit()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, message: str, body_left: bool) -> None:
        super().__init__(message)
        self.status, self.message, self.body_left = status, message, body_left


class RequestLimits:
    """Reads each request's body in full, within a bound and a deadline, before the app sees it.

    - more than `max_bytes` (declared in Content-Length, or counted as a chunked body streams in):
      the rest is read and thrown away, up to `discard_max_bytes`, then 413. Answering before the
      sender has finished would leave it writing into a closed socket (a broken pipe instead of our
      answer), as nginx's lingering close knows. A declared length beyond that bound: 413 at once;
    - a body not complete within `body_timeout` seconds of the end of its headers: 408, connection
      closed. The server's own read timeouts restart on every byte, so a client that sends a byte a
      second would otherwise hold its connection for ever.
    The app then gets the whole body in one message and never waits on the client.

    At most `max_concurrent` requests run in the app at once; the others wait their turn here. Django
    runs each request's sync code on a thread of its own, with its own PostgreSQL connection, so
    without a bound a burst of slow requests would open as many threads and database sessions.
    `unbounded_paths` (the liveness check, which touches no database) never wait for a turn.
    """

    def __init__(self, app: App, *, max_bytes: int, discard_max_bytes: int, body_timeout: float,
                 max_concurrent: int, unbounded_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.unbounded_paths = unbounded_paths
        self.max_bytes = max_bytes
        self.discard_max_bytes = discard_max_bytes
        self.body_timeout = body_timeout
        self.slots = asyncio.Semaphore(max_concurrent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":  # Django serves none: refuse (403) rather than fail with a traceback
            await receive()
            await send({"type": "websocket.close"})
            return
        try:
            body = await self._read_body(scope, receive)
        except _Refused as refused:
            await _send_json_error(send, refused.status, refused.message, close=refused.body_left)
            return
        if body is None:  # the client went away
            return
        if scope["path"] in self.unbounded_paths:
            await self.app(scope, _replay(body, receive), send)
            return
        async with self.slots:
            await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        declared = _content_length(scope)
        too_big = f"body is larger than {self.max_bytes} bytes"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        chunks: list[bytes] = []
        received = 0
        over = declared is not None and declared > self.max_bytes
        if declared is not None and declared > self.discard_max_bytes:
            raise _Refused(413, too_big, True)  # too much even to throw away: no use reading any of it
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _Refused(408, f"the request body did not arrive within {self.body_timeout:g} s", True)
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                continue  # the deadline check above answers
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            more = message.get("more_body", False)
            if over or received > self.max_bytes:
                over = True
                if not more:
                    raise _Refused(413, too_big, False)
                if received > self.discard_max_bytes:
                    raise _Refused(413, too_big, True)
                continue
            chunks.append(chunk)
            if not more:
                return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Django has nothing to start or stop; saying so spares a warning from the server at every start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:  # the HTTP parser refuses these before we see them
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; after it, the server's receive (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json_error(send: Send, status: int, message: str, *, close: bool) -> None:
    """The API's JSON error shape (resilience.http.json_error), without Django in the way."""
    payload = json.dumps({"success": False, "error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:  # unread body bytes would be taken for the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# Under ASGI each request runs its sync code on a thread of its own, so a connection kept open for the
# next request is never used again: close it at the end of each request (as Django's deployment docs
# advise for ASGI) instead of leaving one idle PostgreSQL session per past request until collected.
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

application = RequestLimits(
    get_asgi_application(),
    # The largest body any endpoint accepts: the webhook's, and Django's own limit for the admin's forms.
    max_bytes=max(settings.WEBHOOK_MAX_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
    discard_max_bytes=settings.WEB_DISCARD_MAX_BYTES,
    body_timeout=settings.WEB_BODY_TIMEOUT_SECONDS,
    max_concurrent=settings.WEB_MAX_CONCURRENT_REQUESTS,
    unbounded_paths=frozenset({"/healthz"}),
)
