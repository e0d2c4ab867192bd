"""The fuzz over real sockets, through the web server as supervisord runs it (hypercorn, the `web`
program's command line): malformed HTTP (bad request lines, huge and invalid headers, bad chunked
bodies, wrong Content-Length) and generated requests to every operation of the OpenAPI document.

Every answer is a well-formed HTTP 4xx (JSON naming the problem where the app answers), never a 5xx or
a connection dropped without one; a refused request stores nothing; the same server process answers
/healthz after each.
"""
from __future__ import annotations

import json
import re
import socket
import urllib.parse
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from access.auth import Scope, create_token
from resilience.openapi import document
from tests.fuzz.coverage import fuzzes
from tests.fuzz.strategies import assert_json_error, content_types, query_params, raw_bodies, values, webhook_documents
from tests.fuzz.test_endpoints_fuzz import mostly, stored
from tests.system.test_web_server import SECRET, status_of, web_env, web_process  # noqa: F401 - fixtures

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*\r\n")
READ_SECONDS = 10  # above the server's body deadline (3 s in web_process), so a 408 arrives within it


def exchange(url: str, raw: bytes, half_close: bool = False) -> bytes:
    """Send `raw` on a new connection; everything the server sends back until it closes or goes quiet."""
    port = urllib.parse.urlsplit(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):  # refused before all of it was sent: read the answer
            pass
        sock.settimeout(READ_SECONDS)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if response_complete(data):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return data


def response_complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
    if length is None:
        return body.endswith(b"0\r\n\r\n")  # chunked: the last chunk
    return len(body) >= int(length.group(1))


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the first answer in `data`; fails unless it is a well-formed HTTP answer."""
    assert data, "the connection closed without an answer"
    match = STATUS_LINE.match(data)
    assert match, f"not an HTTP answer: {data[:200]!r}"
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        assert sep, f"malformed header line {line!r}"
        headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    elif headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(match.group(1)), headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def assert_refused(data: bytes, case: str) -> int:
    status, headers, body = parse(data)
    assert 400 <= status < 500, (case, data[:300])
    if headers.get("content-type", "").startswith("application/json"):
        assert_json_error(json.loads(body))
    return status


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


HOST = b"Host: 127.0.0.1\r\n"
JSON_SECRET = b"Content-Type: application/json\r\nX-Clay-Secret: " + SECRET.encode() + b"\r\n"
WEBHOOK = b"POST /api/webhooks/clay HTTP/1.1\r\n" + HOST + JSON_SECRET
LEAD = b'[{"email": "wire@acme.io"}]'

# What a lenient but correct HTTP/1.1 parser (h11) may take rather than refuse: then any answer but a 5xx.
TOLERATED = {"unknown HTTP version", "bare LF line ends", "2,000 headers", "folded header line"}
# The client closed its side before the body it promised was complete: nobody is left to read an answer
# (the server closes the connection; what matters is that it keeps serving).
HUNG_UP = {"body cut off by the client", "chunked without the last chunk"}
# RFC 9112 section 6.1: a transfer coding the server does not know is answered 501, by hypercorn's h11.
NOT_IMPLEMENTED = {"unknown Transfer-Encoding"}

MALFORMED = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "no target": b"GET\r\n\r\n",
    "unknown HTTP version": b"GET /healthz HTTP/9.9\r\n" + HOST + b"\r\n",
    "HTTP/1.1 without Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "NUL in the target": b"GET /heal\x00thz HTTP/1.1\r\n" + HOST + b"\r\n",
    "space in the target": b"GET /api/a b HTTP/1.1\r\n" + HOST + b"\r\n",
    "control byte in the method": b"G\x01T /healthz HTTP/1.1\r\n" + HOST + b"\r\n",
    "bare LF line ends": b"GET /api/nowhere HTTP/1.1\nHost: 127.0.0.1\n\n",
    "request line of 100 KB": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
    "a header of 100 KB": b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "2,000 headers": b"GET /healthz HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: y\r\n" % i for i in range(2000)) + b"\r\n",
    "header without a colon": b"GET /healthz HTTP/1.1\r\n" + HOST + b"NoColonHere\r\n\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\n" + HOST + b"Bad Name: x\r\n\r\n",
    "control byte in a header name": b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-\x01: y\r\n\r\n",
    "NUL in a header value": b"GET /api/openapi.json HTTP/1.1\r\n" + HOST + b"Authorization: Bearer a\x00b\r\n\r\n",
    "folded header line": b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\r\n b\r\n\r\n",
    "two different Content-Lengths": WEBHOOK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + LEAD,
    "negative Content-Length": WEBHOOK + b"Content-Length: -1\r\n\r\n" + LEAD,
    "Content-Length not a number": WEBHOOK + b"Content-Length: 1e3\r\n\r\n" + LEAD,
    "Content-Length of 10^30": WEBHOOK + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n" + LEAD,
    "Content-Length shorter than the body": WEBHOOK + b"Content-Length: 10\r\n\r\n" + LEAD,
    "Content-Length longer than the body": WEBHOOK + b"Content-Length: 500\r\n\r\n" + LEAD,
    "body cut off by the client": (WEBHOOK + b"Content-Length: 500\r\n\r\n" + LEAD, True),
    "Content-Length and chunked": WEBHOOK + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "unknown Transfer-Encoding": WEBHOOK + b"Transfer-Encoding: gzip\r\n\r\n" + LEAD,
    "chunk size not hex": WEBHOOK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + LEAD + b"\r\n0\r\n\r\n",
    "chunk longer than its size": WEBHOOK + b"Transfer-Encoding: chunked\r\n\r\n2\r\n" + LEAD + b"\r\n0\r\n\r\n",
    "chunk size of 2^64": WEBHOOK + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nab\r\n0\r\n\r\n",
    "chunked without the last chunk": (WEBHOOK + b"Transfer-Encoding: chunked\r\n\r\n1b\r\n" + LEAD + b"\r\n", True),
    "chunked with trailer garbage": WEBHOOK + b"Transfer-Encoding: chunked\r\n\r\n1b\r\n" + LEAD + b"\r\n0\r\n\x01\x02\r\n\r\n",
    "a Host not allowed, on the API": b"GET /api/openapi.json HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "undecodable bytes in the path": b"GET /api/\xff\xfe%ZZ HTTP/1.1\r\n" + HOST + b"\r\n",
    "absolute-form target to another host": b"GET http://evil.example/api/openapi.json HTTP/1.1\r\n" + HOST + b"\r\n",
    "webhook without its secret": b"POST /api/webhooks/clay HTTP/1.1\r\n" + HOST +
                                  b"Content-Type: application/json\r\nContent-Length: 27\r\n\r\n" + LEAD,
}


def test_malformed_http_is_refused_with_a_4xx_and_the_server_keeps_serving(web_process):
    url, group = web_process
    pid = group.pid("web")
    before = stored()
    for case, raw in MALFORMED.items():
        raw, half_close = raw if isinstance(raw, tuple) else (raw, False)

        data = exchange(url, raw, half_close)

        if case in HUNG_UP:
            assert not data or parse(data)[0] in (400, 408), (case, data[:300])
        elif case in NOT_IMPLEMENTED:
            assert parse(data)[0] == 501, (case, data[:300])
        elif case in TOLERATED:
            assert parse(data)[0] < 500, (case, data[:300])
        else:
            assert_refused(data, case)
        assert status_of(f"{url}/healthz") == 200, (case, group.logs())
    assert group.pid("web") == pid and group.alive("web")
    assert stored() == before, "a malformed request stored something"


# --- generated requests, well framed, to every operation --------------------------------------------

OPERATIONS = [(method, path) for path, item in document()["paths"].items() for method in item if method != "parameters"]


@fuzzes()  # each operation has its own fuzz through Django's test client; this one goes over the wire
def test_generated_requests_over_real_sockets(web_process):
    url, group = web_process
    tokens = {"write": create_token("wire", scopes=Scope.values)[1], "read-only": create_token("wire-ro")[1]}
    answers: list[int] = []

    @hypothesis_settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(operation=mostly(st.sampled_from(OPERATIONS), st.tuples(st.sampled_from(["get", "post", "put", "delete",
                                                                                     "patch", "options"]),
                                                                    st.sampled_from([p for _, p in OPERATIONS])), 80),
           auth=st.sampled_from(["write", "write", "read-only", "none", "wrong"]), params=query_params,
           raw=st.one_of(raw_bodies(webhook_documents), raw_bodies(values), st.just(b"")),
           content_type=content_types, secret=st.sampled_from([SECRET, SECRET, "wrong"]))
    def fuzz(operation, auth, params, raw, content_type, secret):
        method, path = operation
        path = path.replace("{lead_id}", "1")
        query = "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}="
                         f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in params.items())
        headers = {"X-Clay-Secret": secret}
        if content_type and "\x00" not in content_type:
            headers["Content-Type"] = content_type
        if auth in tokens:
            headers["Authorization"] = f"Bearer {tokens[auth]}"
        elif auth == "wrong":
            headers["Authorization"] = "Bearer rsl_wrong"
        before = stored()

        data = exchange(url, request_bytes(method.upper(), path + ("?" + query if query else ""), headers, raw))

        status, response_headers, body = parse(data)
        answers.append(status)
        assert status < 500, (method, path, data[:500])
        if status >= 400 and method != "head":
            assert response_headers["content-type"].startswith("application/json"), data[:300]
            assert_json_error(json.loads(body))
            assert stored() == before, f"a refused {method} {path} stored something"

    fuzz()
    assert group.alive("web") and status_of(f"{url}/healthz") == 200
    assert len(answers) >= 100 and any(s < 300 for s in answers) and any(s >= 400 for s in answers), answers
