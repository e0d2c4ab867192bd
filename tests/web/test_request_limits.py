"""resilience.asgi.RequestLimits on its own, with a scripted client in place of the server."""
from __future__ import annotations

import asyncio
import json

from resilience.asgi import RequestLimits


class Client:
    """The server's side of one request: what the client sent (messages, or a stall), and what came back."""

    def __init__(self, *messages: dict, stall: bool = False) -> None:
        self.messages = list(messages)
        self.stall = stall
        self.sent: list[dict] = []
        self.received = 0

    async def receive(self) -> dict:
        if self.messages:
            self.received += 1
            return self.messages.pop(0)
        if self.stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[bytes, bytes], dict]:
        start, body = self.sent
        return start["status"], dict(start["headers"]), json.loads(body["body"])


class App:
    def __init__(self) -> None:
        self.bodies: list[list[dict]] = []

    async def __call__(self, scope, receive, send) -> None:
        self.bodies.append([await receive()])
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def limits(app: App, **overrides) -> RequestLimits:
    options = {"max_bytes": 100, "discard_max_bytes": 1000, "body_timeout": 0.2, "max_concurrent": 2} | overrides
    return RequestLimits(app, **options)


def scope(content_length: int | None = None) -> dict:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {"type": "http", "path": "/api/webhooks/clay", "method": "POST", "headers": headers}


def chunk(size: int, more: bool = True) -> dict:
    return {"type": "http.request", "body": b"x" * size, "more_body": more}


def test_a_body_in_pieces_within_the_bound_reaches_the_app_whole_in_one_message():
    app, client = App(), Client(chunk(40), chunk(40), chunk(20, more=False))
    asyncio.run(limits(app)(scope(), client.receive, client.send))
    assert app.bodies == [[{"type": "http.request", "body": b"x" * 100, "more_body": False}]]
    assert client.sent[0]["status"] == 202


def test_a_declared_oversized_body_is_read_to_its_end_then_refused_and_the_connection_kept():
    app, client = App(), Client(*[chunk(50) for _ in range(5)], chunk(50, more=False))
    asyncio.run(limits(app)(scope(300), client.receive, client.send))
    assert app.bodies == [] and client.received == 6
    status, headers, body = client.answer()
    assert (status, body) == (413, {"success": False, "error": "body is larger than 100 bytes"})
    assert b"connection" not in headers


def test_past_the_discard_bound_the_413_comes_at_once_and_the_connection_is_closed():
    app, client = App(), Client(*[chunk(400) for _ in range(10)])
    asyncio.run(limits(app)(scope(), client.receive, client.send))  # chunked: counted as it comes
    assert client.received == 3  # 1200 bytes read: over the 1000 it may throw away
    status, headers, _ = client.answer()
    assert status == 413 and headers[b"connection"] == b"close"


def test_a_declared_length_past_the_discard_bound_is_refused_before_reading():
    app, client = App(), Client(*[chunk(400) for _ in range(10)])
    asyncio.run(limits(app)(scope(4000), client.receive, client.send))
    assert client.received == 0
    status, headers, _ = client.answer()
    assert status == 413 and headers[b"connection"] == b"close"


def test_a_body_that_stalls_past_the_deadline_gets_408_and_the_connection_is_closed():
    app, client = App(), Client(chunk(10), stall=True)
    asyncio.run(limits(app)(scope(100), client.receive, client.send))
    status, headers, body = client.answer()
    assert app.bodies == [] and status == 408 and headers[b"connection"] == b"close"
    assert body == {"success": False, "error": "the request body did not arrive within 0.2 s"}


def test_a_client_gone_before_its_body_ended_gets_nothing_and_reaches_no_view():
    app, client = App(), Client(chunk(10))
    asyncio.run(limits(app)(scope(100), client.receive, client.send))
    assert app.bodies == [] and client.sent == []


def test_lifespan_is_answered_for_django():
    client = Client({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    asyncio.run(limits(App())({"type": "lifespan"}, client.receive, client.send))
    assert client.sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_a_websocket_is_refused_without_reaching_django():
    app, client = App(), Client({"type": "websocket.connect"})
    asyncio.run(limits(app)({"type": "websocket", "path": "/ws", "headers": []}, client.receive, client.send))
    assert app.bodies == [] and client.sent == [{"type": "websocket.close"}]
