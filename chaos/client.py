"""The webhook's client in make chaos: posts the generated leads in batches over HTTP with the real
secret, as Clay would, and retries a batch with the same Idempotency-Key on a 5xx or a connection
error (the answer of a retry that the server already stored is the first one, replayed)."""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Batch:
    key: str
    leads: list[dict[str, Any]]
    kinds: list[str]
    job_ids: list[str] = field(default_factory=list)
    tries: int = 0
    replayed: bool = False


@dataclass
class Poster:
    port: int
    secret: str
    batches: list[Batch]
    interval: float  # seconds between the starts of two batches
    deadline: float  # time.monotonic() after which it gives up
    log: Callable[[str], None]
    retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def post(self, batch: Batch) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("POST", "/api/webhooks/clay", body=json.dumps(batch.leads).encode(), headers={
                "Content-Type": "application/json", "X-Clay-Secret": self.secret, "Idempotency-Key": batch.key})
            response = conn.getresponse()
            body = response.read()
            try:
                data = json.loads(body) if body else {}
            except ValueError:
                data = {"raw": body[:200].decode(errors="replace")}
            return response.status, data, {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def send(self, batch: Batch) -> None:
        wait = 0.5
        while True:
            batch.tries += 1
            try:
                status, data, headers = self.post(batch)
            except (OSError, http.client.HTTPException) as exc:
                status, data, headers = 0, {"error": f"{type(exc).__name__}: {exc}"}, {}
            key = str(status)
            self.answers[key] = self.answers.get(key, 0) + 1
            if status == 202:
                batch.job_ids = [str(j) for j in data["jobIds"]]
                batch.replayed = headers.get("idempotent-replayed") == "true"
                if len(batch.job_ids) != len(batch.leads):
                    raise RuntimeError(f"batch {batch.key}: {len(batch.leads)} leads, {len(batch.job_ids)} job ids")
                return
            if status and status < 500:  # a 4xx is our bug, not a fault to ride out
                raise RuntimeError(f"batch {batch.key}: {status} {data}")
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"batch {batch.key}: still {status or data.get('error')} at the deadline")
            self.retries += 1
            if batch.tries in (1, 5) or batch.tries % 20 == 0:
                self.log(f"webhook: batch {batch.key} answered {status or data.get('error')}; retrying "
                         f"(same Idempotency-Key), try {batch.tries}")
            time.sleep(wait)
            wait = min(wait * 2, 4.0)

    def run(self) -> None:
        try:
            start = time.monotonic()
            for i, batch in enumerate(self.batches):
                time.sleep(max(0.0, start + i * self.interval - time.monotonic()))
                self.send(batch)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.log(f"webhook client stopped: {self.error}")
        finally:
            self.done.set()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="poster", daemon=True)
        thread.start()
        return thread
