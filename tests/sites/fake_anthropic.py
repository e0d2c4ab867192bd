"""A fake Anthropic Messages API on loopback, reached by the real `anthropic` client through
ANTHROPIC_BASE_URL. Each test scripts its answers (200 with a tool call, 429 + retry-after, 529, 400,
401, a malformed tool input ...) and reads back what arrived: requests, headers, bodies.

Run alone (python -m tests.sites.fake_anthropic PORT [DELAY]) it answers every request with a valid
site after DELAY seconds, for system tests' worker processes.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"input_tokens": 2000, "output_tokens": 500, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def site_input(company: str = "Acme") -> dict[str, Any]:
    return {
        "headline": f"{company} builds what you need",
        "subheadline": "Fast, careful and friendly.",
        "sections": [{"title": "What we do", "body": "Good things."}, {"title": "Why us", "body": "Care."},
                     {"title": "Start", "body": "Write to us."}],
        "call_to_action": {"label": "Book a call", "text": "We answer within a day."},
        "palette": {"primary": "#123456", "accent": "#abcdef", "background": "#ffffff"},
    }


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def ok(tool_input: dict[str, Any] | None = None, usage: dict[str, int] | None = None, delay: float = 0.0) -> Reply:
    return Reply(200, {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "tool_use", "id": "toolu_fake", "name": "publish_site",
                     "input": site_input() if tool_input is None else tool_input}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {**USAGE, **(usage or {})},
    }, delay=delay)


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {})


class FakeAnthropic:
    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or ok()
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    reply = fake.script.popleft() if fake.script else fake.default
                if reply.delay:
                    time.sleep(reply.delay)
                data = json.dumps(reply.body or {}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-anthropic")

    def answer(self, *replies: Reply) -> None:
        """The next requests get these replies, in order; then the default."""
        with self.lock:
            self.script.extend(replies)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def start(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    port, delay = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    fake = FakeAnthropic(default=ok(delay=delay))
    fake.server.server_close()
    fake.server = ThreadingHTTPServer(("127.0.0.1", port), fake.server.RequestHandlerClass)
    fake.server.daemon_threads = True
    print(f"fake anthropic on {port}", flush=True)
    fake.server.serve_forever()
