"""What every fake server here shares: a free port on loopback, and a threaded HTTP server on it that
answers each POST with JSON."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JsonServer:
    """A threaded HTTP server on 127.0.0.1:`port` (a free one by default) whose every POST is answered by
    `respond(request, body)`: (status, JSON body, extra headers). An answer's wait (a slow or hanging API)
    belongs in `respond`; a client that gave up waiting is no error: the server answered all the same."""

    def __init__(self, port: int = 0, *, name: str = "fake-server") -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer, headers = fake.respond(self, body)
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for header, value in headers.items():
                        self.send_header(header, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name=name)

    def respond(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
