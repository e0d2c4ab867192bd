"""A fake Anthropic Messages API on loopback, reached by the real `anthropic` client through
ANTHROPIC_BASE_URL. Each test scripts its answers (200 with a tool call, 429 + retry-after, 529, 400,
401, a malformed tool input ...) and reads back what arrived: requests, headers, bodies.

Run alone it is a process for other processes' workers:

    python -m fakes.anthropic PORT [DELAY]                       # a valid site after DELAY s
    python -m fakes.anthropic PORT --mix SEED --journal PATH    # make chaos's wire mode

With --mix the answers are a seeded random mix (Mix below): valid sites whose usage carries cache
tokens, slow ones, 529 overloaded, 429 with a retry-after, a tool input that fails validation, an
answer without the tool call. With --journal every answer is appended to a JSON-lines file and
fsynced BEFORE the response is written: the fake's own count of what it handed out, which the books
of the code under test are checked against (an answer whose connection broke is handed out all the
same: the API has spent the money).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from fakes.loopback import JsonServer

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
    kind: str = ""  # what the mix meant it to be (valid, slow, overloaded ...): the journal's word


def ok(tool_input: dict[str, Any] | None = None, usage: dict[str, int] | None = None, delay: float = 0.0) -> Reply:
    return Reply(200, {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "tool_use", "id": "toolu_fake", "name": "publish_site",
                     "input": site_input() if tool_input is None else tool_input}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {**USAGE, **(usage or {})},
    }, delay=delay)


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {})


def no_tool(usage: dict[str, int] | None = None) -> Reply:
    """An answer that ignores the forced tool choice (text only): paid for, and malformed."""
    reply = ok(usage=usage)
    assert reply.body is not None
    reply.body.update(content=[{"type": "text", "text": "I would rather describe the company in prose."}],
                      stop_reason="end_turn")
    return reply


def peer_gone(sock: socket.socket) -> bool:
    """Has the client closed its end (its process killed while it waited)? The client sends nothing
    more while it waits for the answer, so a readable socket with nothing to read is its EOF."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class FakeAnthropic(JsonServer):
    """answer_for(request) picks the reply when nothing is scripted (default: `default`);
    on_answer(request, reply) runs after the reply's delay and before a byte of it is written."""

    def __init__(self, default: Reply | None = None, *, port: int = 0,
                 answer_for: Callable[[dict[str, Any]], Reply] | None = None,
                 on_answer: Callable[[dict[str, Any], Reply], None] | None = None) -> None:
        super().__init__(port, name="fake-anthropic")
        self.default = default or ok()
        self.answer_for = answer_for or (lambda request: self.default)
        self.on_answer = on_answer
        self.script: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body", "received", "connection"}
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.port}"

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any, dict[str, str]]:
        # A client that dies waiting is handed the answer all the same: on_answer has seen it.
        request = {"path": handler.path, "headers": dict(handler.headers), "body": json.loads(body or b"{}"),
                   "received": time.time(), "idempotency_key": handler.headers.get("Idempotency-Key"),
                   "connection": handler.connection}
        with self.lock:
            self.requests.append(request)
            reply = self.script.popleft() if self.script else None
        if reply is None:
            reply = self.answer_for(request)
        if reply.delay:
            time.sleep(reply.delay)
        if self.on_answer is not None:
            self.on_answer(request, reply)
        return reply.status, reply.body or {}, reply.headers

    def answer(self, *replies: Reply) -> None:
        """The next requests get these replies, in order; then the default."""
        with self.lock:
            self.script.extend(replies)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)


# --- the process mode of make chaos ---------------------------------------------------------------

# The mix's odds for a job's first ask (Mix.weights). A job meets at most one of the faults: two
# malformed answers in a row are permanent by design, and errors on every attempt would exhaust the
# job's attempts; either would dead-letter a qualified lead, which the soak's checks rightly forbid.
MIX_WEIGHTS = {"valid": 62, "slow": 10, "overloaded": 8, "rate_limited": 7, "malformed_input": 7, "no_tool": 6}
FAULTS = ("overloaded", "rate_limited", "malformed_input", "no_tool")
PAID = ("valid", "slow", "malformed_input", "no_tool")  # a 200 with usage: the API bills it
VALID = ("valid", "slow")
# Usage ranges (tokens): the prompt with its schema, the answer, and the prompt cache's two counts,
# each cache count zero on about half of the answers (a cold cache writes, a warm one reads).
INPUT_TOKENS, OUTPUT_TOKENS = (1200, 2600), (300, 900)
CACHE_WRITE_TOKENS, CACHE_READ_TOKENS = (800, 2000), (1000, 4000)
CACHE_SHARE = 0.5
SLOW_SECONDS = (2.0, 5.0)
RETRY_AFTER_SECONDS = (1, 3)


def mean_usage() -> dict[str, float]:
    """A paid answer's usage on average (what a budget meant to be reached mid-run is set from)."""
    def mid(span: tuple[int, int]) -> float:
        return sum(span) / 2

    return {"input_tokens": mid(INPUT_TOKENS), "output_tokens": mid(OUTPUT_TOKENS),
            "cache_creation_input_tokens": mid(CACHE_WRITE_TOKENS) * CACHE_SHARE,
            "cache_read_input_tokens": mid(CACHE_READ_TOKENS) * CACHE_SHARE}


def paid_answers_per_site() -> float:
    """A site's paid answers on average: one, and a second ask after a malformed first one."""
    return 1 + sum(MIX_WEIGHTS[k] for k in ("malformed_input", "no_tool")) / sum(MIX_WEIGHTS.values())


def base_key(idempotency_key: str) -> str:
    """The job's key, the same for its second ask (`job-<uuid>:again`)."""
    return idempotency_key.removesuffix(":again")


@dataclass
class Mix:
    """A seeded random mix of answers, at most one fault per job (by its Idempotency-Key)."""

    seed: int
    weights: dict[str, int] = field(default_factory=lambda: dict(MIX_WEIGHTS))
    rng: random.Random = field(init=False)
    faulted: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def usage(self) -> dict[str, int]:
        rng = self.rng
        return {"input_tokens": rng.randint(*INPUT_TOKENS), "output_tokens": rng.randint(*OUTPUT_TOKENS),
                "cache_creation_input_tokens": rng.randint(*CACHE_WRITE_TOKENS) if rng.random() < CACHE_SHARE else 0,
                "cache_read_input_tokens": rng.randint(*CACHE_READ_TOKENS) if rng.random() < CACHE_SHARE else 0}

    def kind_for(self, idempotency_key: str) -> str:
        key = base_key(idempotency_key)
        kind = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        if kind in FAULTS:
            if key in self.faulted or not key:
                return "valid"
            self.faulted.add(key)
        return kind

    def answer_for(self, request: dict[str, Any]) -> Reply:
        with self.lock:  # one generator for every handler thread: the seed decides the draws
            kind = self.kind_for(request["idempotency_key"] or "")
            usage = self.usage() if kind in PAID else None
            slow = self.rng.uniform(*SLOW_SECONDS)
            retry_after = self.rng.randint(*RETRY_AFTER_SECONDS)
        if kind == "overloaded":
            reply = error(529, "overloaded_error", "Overloaded")
        elif kind == "rate_limited":
            reply = error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                          {"retry-after": str(retry_after)})
        elif kind == "malformed_input":
            broken = site_input()
            broken["palette"]["primary"] = "blue"  # not #rrggbb: fails validation
            reply = ok(broken, usage=usage)
        elif kind == "no_tool":
            reply = no_tool(usage=usage)
        else:
            reply = ok(usage=usage, delay=slow if kind == "slow" else 0.0)
        reply.kind = kind
        # Every answer its own ids, as the API gives them: the request-id header and the message's id.
        reply.headers["request-id"] = f"req_{uuid.uuid4().hex}"
        if reply.body is not None and reply.status == 200:
            reply.body["id"] = f"msg_{uuid.uuid4().hex}"
        return reply


# Request headers the journal keeps out: the key is a secret even when it is a fake one.
_SECRET_HEADERS = {"x-api-key", "authorization"}


class Journal:
    """One JSON line per answer, fsynced before the answer is written (on_answer's contract)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("a", encoding="utf-8")
        self.lock = threading.Lock()
        self.n = 0

    def append(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.n += 1
            self.file.write(json.dumps({"n": self.n, **entry}, sort_keys=True) + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())

    def on_answer(self, request: dict[str, Any], reply: Reply) -> None:
        body = reply.body or {}
        headers = {name: ("<present>" if name.lower() in _SECRET_HEADERS else value)
                   for name, value in request["headers"].items()}
        self.append({
            "received": request["received"], "answered": time.time(), "kind": reply.kind,
            "status": reply.status, "request_id": reply.headers.get("request-id"),
            "message_id": body.get("id") if reply.status == 200 else None,
            "idempotency_key": request["idempotency_key"], "model": request["body"].get("model"),
            "usage": body.get("usage") if reply.status == 200 else None,
            "retry_after": reply.headers.get("retry-after"), "delay": reply.delay, "headers": headers,
            # The worker that asked was killed while it waited: the answer is paid, never read.
            "client_gone": peer_gone(request["connection"]),
        })


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's answers in the order they were handed out. A last line cut short by a crash of
    the fake itself is the one entry that may be missing (it was never answered either)."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return sorted(entries, key=lambda e: e["n"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fakes.anthropic", description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("delay", type=float, nargs="?", default=0.0, help="seconds before each answer (no --mix)")
    parser.add_argument("--mix", type=int, metavar="SEED", help="answer a seeded random mix (see Mix)")
    parser.add_argument("--journal", type=Path, help="append every answer to this JSON-lines file, fsynced first")
    args = parser.parse_args(argv)
    journal = Journal(args.journal) if args.journal else None
    mix = Mix(args.mix) if args.mix is not None else None
    fake = FakeAnthropic(default=ok(delay=args.delay), port=args.port, answer_for=mix.answer_for if mix else None,
                         on_answer=journal.on_answer if journal else None)
    print(f"fake anthropic on {args.port}" + (f", mix seed {args.mix}" if mix else "")
          + (f", journal {args.journal}" if journal else ""), flush=True)
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
