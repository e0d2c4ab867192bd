"""The fake Anthropic API's process mode for make chaos (fakes/anthropic.py): its seeded mix
through the real SDK, and its journal, the independent count the chaos checks read."""
import json
import socket
import time
from collections import Counter

import anthropic
import pytest

from fakes import anthropic as fa


@pytest.fixture
def wire(tmp_path):
    journal = fa.Journal(tmp_path / "journal.jsonl")
    fake = fa.FakeAnthropic(answer_for=fa.Mix(seed=5).answer_for, on_answer=journal.on_answer).start()
    yield fake, journal
    fake.stop()


def ask(client, key: str):
    try:
        message = client.messages.create(model="claude-3-haiku-20240307", max_tokens=64,
                                         messages=[{"role": "user", "content": "x"}],
                                         extra_headers={"Idempotency-Key": key})
        return message._request_id, message
    except anthropic.APIStatusError as exc:
        return exc.response.headers.get("request-id"), exc


def test_every_answer_is_in_the_journal_before_the_client_has_it_with_ids_of_its_own(wire, monkeypatch):
    fake, journal = wire
    monkeypatch.setattr(fa, "SLOW_SECONDS", (0.01, 0.02))
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, timeout=5)
    seen = []
    for n in range(60):
        request_id, answer = ask(client, f"job-{n % 20}" + (":again" if n >= 40 else ""))
        logged = fa.read_journal(journal.path)
        assert logged[-1]["request_id"] == request_id  # on disk when the answer arrived
        seen.append((request_id, answer))
    entries = fa.read_journal(journal.path)
    assert len({e["request_id"] for e in entries}) == 60 and all(e["request_id"].startswith("req_") for e in entries)
    paid = [e for e in entries if e["kind"] in fa.PAID]
    assert len({e["message_id"] for e in paid}) == len(paid)
    assert all(e["usage"]["input_tokens"] > 0 for e in paid)
    assert any(e["usage"]["cache_read_input_tokens"] for e in paid) and any(e["usage"]["cache_creation_input_tokens"]
                                                                            for e in paid)
    assert {e["kind"] for e in entries} - {"valid"}, "a mix, not only valid answers"
    faults = Counter(fa.base_key(e["idempotency_key"]) for e in entries if e["kind"] in fa.FAULTS)
    assert max(faults.values()) == 1  # at most one fault per job: the mix never dead-letters a lead
    limited = [e for e in entries if e["kind"] == "rate_limited"]
    assert all(1 <= int(e["retry_after"]) <= 3 for e in limited)
    assert all("<present>" in e["headers"].values() for e in entries)  # the key's header, its value left out
    assert "sk-ant-test" not in journal.path.read_text()  # the key stays out of the file


def test_an_answer_whose_client_went_away_is_journalled_as_handed_out(tmp_path):
    journal = fa.Journal(tmp_path / "journal.jsonl")
    fake = fa.FakeAnthropic(fa.ok(delay=0.5), on_answer=journal.on_answer).start()
    try:
        body = json.dumps({"model": "m", "max_tokens": 1, "messages": []}).encode()
        port = fake.server.server_address[1]
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nIdempotency-Key: job-1\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
        for _ in range(50):  # bounded: the answer comes after its 0.5 s
            if journal.path.read_text():
                break
            time.sleep(0.05)
        [entry] = fa.read_journal(journal.path)
        assert entry["client_gone"] and entry["usage"] and entry["status"] == 200
    finally:
        fake.stop()
