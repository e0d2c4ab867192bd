"""The web server, started with the `web` program's command line from deploy/supervisord.conf and driven
from outside with raw sockets and urllib: bodies it must not leave unread, and clients that stall."""
from __future__ import annotations

import configparser
import http.client
import http.cookiejar
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from leads.models import LeadSubmission
from tests.system.processes import ROOT, ProcessGroup, free_port, wait_for
from workers.processes import child_pids, cmdline

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]
SECRET = "test-clay-secret"
HEADER_TIMEOUT, BODY_TIMEOUT = 2, 3
WEBHOOK_HEADERS = {"Content-Type": "application/json", "X-Clay-Secret": SECRET}


def web_command(port: int, var_dir: Path) -> list[str]:
    """The `web` program's command, as supervisord would run it, on `port` and with var/ in `var_dir`."""
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string((ROOT / "deploy" / "supervisord.conf").read_text())
    command = (parser.get("program:web", "command")
               .replace("%(here)s/../var", str(var_dir)).replace("%(here)s", str(ROOT / "deploy"))
               .replace("%(ENV_WEB_PORT)s", str(port)).replace("%%", "%"))
    return shlex.split(command)


@pytest.fixture
def web_process(tmp_path, redis_client, web_env) -> tuple[str, ProcessGroup]:
    """A running web server with short header and body deadlines: (its base URL, its process group)."""
    (tmp_path / "log").mkdir()
    group = ProcessGroup(tmp_path, VAR_DIR=str(tmp_path), WEB_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
                         WEB_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT), LOG_LEVEL="INFO", **web_env)
    port = free_port()
    group.start("web", web_command(port, tmp_path))
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: status_of(f"{url}/healthz") == 200, 30), group.logs()
        yield url, group
    finally:
        group.stop_all(timeout=40)


@pytest.fixture
def web_env() -> dict[str, str]:
    """Extra environment for the web server of one test (override the fixture, or parametrize it)."""
    return {}


@pytest.fixture
def web(web_process) -> str:
    return web_process[0]


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, dict, float]:
    """(status, JSON body, seconds taken), reading error answers too."""
    started = time.monotonic()
    req = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw), time.monotonic() - started


def post_chunked(url: str, pieces: list[bytes]) -> tuple[int, dict]:
    """A POST with Transfer-Encoding: chunked and no Content-Length, as streaming senders do."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("POST", parts.path, body=iter(pieces), headers=WEBHOOK_HEADERS, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def lead(email: str) -> bytes:
    return json.dumps([{"email": email, "first_name": "Ada", "company": "Acme"}]).encode()


def test_an_oversized_body_sent_without_expect_continue_reads_the_413(web):
    # urllib sends the whole body before it reads anything: answered before that, it would get a broken pipe.
    body = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    status, answer, _ = request(f"{web}/api/webhooks/clay", body, WEBHOOK_HEADERS)
    assert status == 413
    assert answer == {"success": False, "error": "body is larger than 1048576 bytes"}
    assert request(f"{web}/api/webhooks/clay", lead("after@acme.io"), WEBHOOK_HEADERS)[0] == 202


def test_a_chunked_webhook_body_is_read_and_accepted(web):
    body = lead("chunked@acme.io")
    status, answer = post_chunked(f"{web}/api/webhooks/clay", [body[:7], body[7:30], body[30:]])
    assert (status, answer["accepted"]) == (202, 1), answer
    assert LeadSubmission.objects.filter(payload__email="chunked@acme.io").count() == 1


def test_an_oversized_chunked_body_gets_413(web):
    piece = b" " * 65536
    status, answer = post_chunked(f"{web}/api/webhooks/clay", [b"["] + [piece] * 32 + [b"]"])  # 2 MiB
    assert status == 413
    assert answer == {"success": False, "error": "body is larger than 1048576 bytes"}


def open_stalled(url: str, kind: str) -> socket.socket:
    """A connection that stops before its headers end, or after 10 of the 100 body bytes it promised."""
    port = urllib.parse.urlsplit(url).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == "headers":
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    else:
        sock.sendall(f"POST /api/webhooks/clay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"X-Clay-Secret: {SECRET}\r\nContent-Length: 100\r\n\r\n".encode() + b'[{"email":')
    return sock


def is_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return not sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except ConnectionResetError:
        # The server closed while bytes we trickled were still unread on its side: its kernel
        # answers with a reset instead of a FIN. Closed all the same.
        return False
    finally:
        sock.setblocking(True)


def read_until_closed(sock: socket.socket, seconds: float) -> bytes | None:
    """Everything the server sends until it closes the connection; None if still open after `seconds`."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def test_ten_stalled_connections_do_not_starve_others_and_are_closed_after_their_deadline(web):
    stalled = [open_stalled(web, "headers") for _ in range(5)] + [open_stalled(web, "body") for _ in range(5)]
    try:
        time.sleep(0.3)  # the server has them all
        health = request(f"{web}/healthz", timeout=5)
        accepted = request(f"{web}/api/webhooks/clay", lead("meanwhile@acme.io"), WEBHOOK_HEADERS, timeout=5)
        assert health[:2] == (200, {"status": "ok"}) and health[2] < 1.0, health
        assert accepted[0] == 202 and accepted[2] < 1.0, accepted
        assert all(is_open(sock) for sock in stalled)  # served while they were all held

        # Each is closed once its deadline passes: unfinished headers silently, unfinished bodies with a 408.
        outcomes = [read_until_closed(sock, HEADER_TIMEOUT + BODY_TIMEOUT + 10) for sock in stalled]
        assert outcomes[:5] == [b""] * 5, outcomes
        for answer in outcomes[5:]:
            assert answer is not None and answer.startswith(b"HTTP/1.1 408"), outcomes
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
                "success": False, "error": f"the request body did not arrive within {BODY_TIMEOUT} s"}
    finally:
        for sock in stalled:
            sock.close()


def test_a_silent_http2_connection_is_closed(web):
    """HTTP/2 without TLS ("prior knowledge") skips the header deadline; the read timeout still ends it."""
    sock = socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(web).port), timeout=5)
    try:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert read_until_closed(sock, max(HEADER_TIMEOUT, BODY_TIMEOUT) + 10) is not None
    finally:
        sock.close()


def test_a_client_trickling_bytes_does_not_restart_the_deadlines(web):
    """A byte now and then keeps a per-read timeout from expiring; the deadlines count from the start."""
    headers, body = open_stalled(web, "headers"), open_stalled(web, "body")
    started = time.monotonic()
    closed: dict[str, float] = {}
    try:
        while len(closed) < 2 and time.monotonic() - started < 3 * (HEADER_TIMEOUT + BODY_TIMEOUT):
            for name, sock, trickle in (("headers", headers, b"X-A: b\r\n"), ("body", body, b" ")):
                if name in closed:
                    continue
                if not is_open(sock):
                    closed[name] = time.monotonic() - started
                    continue
                try:
                    sock.sendall(trickle)
                except OSError:
                    closed[name] = time.monotonic() - started
            time.sleep(0.25)
        assert closed.get("headers", 99) < HEADER_TIMEOUT + 2, closed
        assert closed.get("body", 99) < BODY_TIMEOUT + 2, closed
    finally:
        headers.close()
        body.close()


@contextmanager
def posts_held_by_a_table_lock(url: str, count: int) -> Iterator[list[int]]:
    """`count` webhook posts that wait inside their view for a lock this block holds; the list gets
    their statuses once they return (after the block: the lock goes with its transaction)."""
    results: list[int] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE leads_leadsubmission IN ACCESS EXCLUSIVE MODE")
        posts = [threading.Thread(target=lambda i=i: results.append(request(
            f"{url}/api/webhooks/clay", lead(f"held{i}@acme.io"), WEBHOOK_HEADERS, timeout=30)[0]))
            for i in range(count)]
        for thread in posts:
            thread.start()
        yield results
    for thread in posts:
        thread.join(30)


def test_health_and_the_admin_answer_while_slow_webhook_posts_run(web):
    """Each request's Django code runs on its own thread: three posts held by a table lock leave the
    others free (two sync workers were all busy with two)."""
    with posts_held_by_a_table_lock(web, 3) as results:
        time.sleep(1.0)  # the posts are waiting for the lock
        health = request(f"{web}/healthz", timeout=5)
        login_started = time.monotonic()
        login_status = status_of(f"{web}/admin/login/")
        login_seconds = time.monotonic() - login_started
        assert results == []  # still held
    assert health[0] == 200 and health[2] < 1.0, health
    assert login_status == 200 and login_seconds < 1.0
    assert results == [202, 202, 202]


@pytest.mark.parametrize("web_env", [{"WEB_MAX_CONCURRENT_REQUESTS": "2"}])
def test_at_most_the_configured_number_of_requests_hold_a_database_session(web):
    """Each request's Django code gets a thread and a PostgreSQL session of its own: a burst of slow
    requests waits its turn instead of opening sessions until PostgreSQL refuses everyone."""

    def sessions_waiting() -> int:
        with connection.cursor() as cursor:
            # Inside a transaction PostgreSQL keeps its first reading of the statistics unless told not to.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")
            return cursor.fetchone()[0]

    with posts_held_by_a_table_lock(web, 5) as results:
        assert wait_for(lambda: sessions_waiting() == 2, 10)
        time.sleep(1.0)
        assert sessions_waiting() == 2 and results == []
        health = request(f"{web}/healthz", timeout=5)  # the liveness check does not wait for a turn
        assert health[0] == 200 and health[2] < 1.0, health
    assert results == [202] * 5


def test_the_admin_and_the_dashboard_work_with_a_login(web):
    User.objects.create_superuser("ops", "ops@example.com", "a-long-test-password")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{web}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": "ops", "password": "a-long-test-password",
                                   "csrfmiddlewaretoken": token, "next": "/admin/"}).encode()
    with opener.open(urllib.request.Request(f"{web}/admin/login/", data=form,
                                            headers={"Referer": f"{web}/admin/login/"}), timeout=10) as response:
        assert response.url.endswith("/admin/")
    assert "Dead-letter" in opener.open(f"{web}/admin/", timeout=10).read().decode()
    assert "lead-processing" in opener.open(f"{web}/admin/workers/", timeout=10).read().decode()
    data = json.loads(opener.open(f"{web}/admin/workers/data", timeout=10).read())
    assert data["health"]["success"] is True and data["deadLetterUnresolved"] == 0


def test_the_admin_static_files_are_served(tmp_path, redis_client):
    """WhiteNoise serves what collectstatic put in VAR_DIR/static, as make up does."""
    group = ProcessGroup(tmp_path, VAR_DIR=str(tmp_path))
    (tmp_path / "log").mkdir()
    group.start("collectstatic", [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "collectstatic",
                                  "--noinput", "-v", "0"])
    assert group.wait_exit("collectstatic", 120) == 0, group.logs()
    port = free_port()
    group.start("web", web_command(port, tmp_path))
    try:
        assert wait_for(lambda: status_of(f"http://127.0.0.1:{port}/healthz") == 200, 30), group.logs()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=10) as response:
            assert response.status == 200 and b"body" in response.read()
    finally:
        group.stop_all(timeout=40)


def serving_pids(master: int) -> set[int]:
    """The worker process(es) under hypercorn's supervising process (not multiprocessing's resource tracker)."""
    return {pid for pid in child_pids(master)
            if "spawn_main" in cmdline(pid)}


def test_hup_replaces_the_serving_process_and_refuses_no_request(web_process):
    """make workers-restart reloads the web app with SIGHUP to supervisord's `web` process."""
    url, group = web_process
    before = serving_pids(group.pid("web"))
    assert len(before) == 1
    group.kill("web", signal.SIGHUP)
    answers = []
    started = time.monotonic()
    while time.monotonic() - started < 6:
        answers.append(request(f"{url}/healthz", timeout=20)[0])  # raises on a refused connection
        time.sleep(0.2)
    assert set(answers) == {200}
    after = serving_pids(group.pid("web"))
    assert len(after) == 1 and after != before


def test_sigterm_lets_the_request_in_progress_finish(web_process):
    """supervisord stops `web` with SIGTERM to its main process only; the answer in progress still goes out."""
    url, group = web_process
    with posts_held_by_a_table_lock(url, 1) as results:
        time.sleep(1.0)  # the post waits for the lock
        group.kill("web", signal.SIGTERM)
        time.sleep(1.0)
        assert group.alive("web")  # waiting for the request, not gone
    assert results == [202]
    assert group.wait_exit("web", 30) == 0


def test_a_bad_web_setting_stops_the_web_program_with_one_line(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_HEADER_TIMEOUT_SECONDS": "soon"}
    result = subprocess.run(web_command(free_port(), tmp_path), cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "configuration error: WEB_HEADER_TIMEOUT_SECONDS='soon' is not a number\n"
