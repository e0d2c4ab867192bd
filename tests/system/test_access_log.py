"""The access log of the web server as supervisord runs it (deploy/supervisord.conf's `web` program):
written through Python logging, so one request is one escaped line, secrets in it are redacted like in
every other log, the file is 0600 and it rotates like the others."""
from __future__ import annotations

import logging
import logging.config
import os
import socket
import stat
import urllib.parse
from pathlib import Path

import pytest
from django.conf import settings

from tests.system.processes import wait_for
# The web server fixtures (a real hypercorn with VAR_DIR in the test's tmp_path).
from tests.system.test_web_server import web, web_env, web_process  # noqa: F401

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

FORGED = '127.0.0.1:1 - - [07/Dec/2026:10:00:00 +0000] "DELETE /api/admin/dead-letter-queue HTTP/1.1" 200 -'


def raw_get(url: str, target: str, headers: bytes = b"") -> bytes:
    """Send `GET target` as it is (no quoting by a client library) and return the status line."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET " + target.encode("latin-1") + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     + headers + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def access_log(tmp_path: Path) -> Path:
    return tmp_path / "log" / "web-access.log"


def access_lines(tmp_path: Path, needle: str, count: int = 1) -> list[str]:
    """The access log's lines holding `needle`, once there are `count` of them."""
    path = access_log(tmp_path)

    def lines() -> list[str]:
        return [line for line in path.read_bytes().decode("utf-8").split("\n") if needle in line] \
            if path.exists() else []

    assert wait_for(lambda: len(lines()) >= count, 10), path.read_bytes() if path.exists() else "no access log"
    return lines()


def test_an_encoded_newline_and_esc_in_a_path_are_one_escaped_line(web, tmp_path):
    forged_path = "/forged%0a" + urllib.parse.quote(FORGED) + "%0d%1b[2J%1b]0;owned%07"
    raw_get(web, forged_path, headers=b'User-Agent: ua\x9b31m"quoted"\r\n')

    [line] = access_lines(tmp_path, "/forged")
    raw = access_log(tmp_path).read_bytes()
    assert b"\x1b" not in raw and b"\r" not in raw and b"\x07" not in raw and "\x9b" not in raw.decode()
    assert not [text for text in raw.decode().split("\n") if text.startswith("127.0.0.1:1 ")]
    assert "/forged\\n127.0.0.1:1 - - [07/Dec/2026:10:00:00 +0000] \\\"DELETE" in line
    assert "\\r\\x1b[2J\\x1b]0;owned\\x07 1.1\" 404" in line
    assert line.endswith('"ua\\x9b31m\\"quoted\\""')  # the user agent's C1 CSI and quotes too
    assert raw.decode().count("\n") == len([text for text in raw.decode().split("\n") if text])


def test_secrets_in_a_path_are_redacted(web, tmp_path):
    # The webhook secret (redacted by its value), a password and an API token (by their shape).
    for path in ("/sites/test-clay-secret/", "/sites/password=hunter2hunter2/", "/api/rsl_0123456789abcdef/x"):
        raw_get(web, path)
    raw_get(web, "/healthz")

    access_lines(tmp_path, "/healthz")
    text = access_log(tmp_path).read_text()
    for secret in ("test-clay-secret", "hunter2hunter2", "rsl_0123456789abcdef"):
        assert secret not in text
    assert '"GET /sites/[redacted]/ 1.1" 404' in text
    assert '"GET /sites/password=[redacted] 1.1" 404' in text


def test_the_access_log_is_readable_by_its_owner_only(web, tmp_path):
    raw_get(web, "/healthz")
    access_lines(tmp_path, "/healthz")
    assert stat.S_IMODE(access_log(tmp_path).stat().st_mode) == 0o600


def test_the_web_program_leaves_the_access_log_to_python_logging():
    # hypercorn's own --access-logfile would write the raw, unredacted line again.
    conf = (Path(settings.BASE_DIR) / "deploy" / "supervisord.conf").read_text()
    assert "--access-logfile" not in conf and "--access-log " not in conf


def test_the_access_log_rotates_at_its_size_keeping_five_backups_each_0600(tmp_path):
    configured = settings.LOGGING["handlers"]["access_file"]
    assert (configured["maxBytes"], configured["backupCount"]) == (10 * 1024 * 1024, 5)
    assert configured["filename"] == str(settings.VAR_DIR / "log" / "web-access.log")
    # The same handler, filter and formatter, on a file of the test's, with a small size to reach.
    path = tmp_path / "log" / "web-access.log"
    logging.config.dictConfig({**settings.LOGGING, "handlers": {
        **settings.LOGGING["handlers"], "access_file": {**configured, "filename": str(path), "maxBytes": 1000}}})
    logger = logging.getLogger("hypercorn.access")
    try:
        for n in range(60):
            logger.info("%s", f"request {n:03d} " + "x" * 80)
    finally:
        for handler in logger.handlers:
            handler.close()
        logging.config.dictConfig(settings.LOGGING)

    files = sorted(path.parent.iterdir())
    assert [file.name for file in files] == ["web-access.log"] + [f"web-access.log.{n}" for n in range(1, 6)]
    assert all(file.stat().st_size <= 1000 for file in files)
    assert {stat.S_IMODE(file.stat().st_mode) for file in files} == {0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "request 059" in path.read_text()


@pytest.fixture
def supervised_web(tmp_path, redis_client):
    """deploy/supervisord.conf's supervisord with its `web` program only, var/ in tmp_path."""
    import configparser

    from bench.footprint import Supervisor
    from tests.system.processes import database_url, free_port

    url, port = database_url(), free_port()
    sv = Supervisor({"DJANGO_SETTINGS_MODULE": "tests.settings",
                     "TEST_DB_NAME": settings.DATABASES["default"]["NAME"], "TEST_DATABASE_URL": url,
                     "DATABASE_URL": url, "TEST_REDIS_URL": settings.REDIS_URL, "WEB_PORT": str(port)},
                    only=(), tmp=tmp_path)
    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    parser.read_string(sv.conf.read_text())
    for section in parser.sections():
        if section.startswith("eventlistener:"):
            parser.remove_section(section)
    web_conf = configparser.RawConfigParser(interpolation=None, strict=False)
    web_conf.read_string((Path(settings.BASE_DIR) / "deploy" / "supervisord.conf").read_text()
                         .replace("%(here)s/../var", str(tmp_path)).replace("%(here)s", str(settings.BASE_DIR / "deploy")))
    parser.add_section("program:web")
    for key, value in web_conf.items("program:web"):
        parser.set("program:web", key, value)
    with sv.conf.open("w") as handle:
        parser.write(handle)
    # As deploy/up.sh starts it (supervisord opens its own log before it applies its config's umask).
    assert "(umask 077 && exec .venv/bin/supervisord " in (Path(settings.BASE_DIR) / "deploy" / "up.sh").read_text()
    old_umask = os.umask(0o077)
    try:
        sv.start(timeout=60)
    finally:
        os.umask(old_umask)
    try:
        yield f"http://127.0.0.1:{port}", sv
    finally:
        sv.stop()


def test_under_supervisord_logs_and_state_files_are_readable_by_their_owner_only(supervised_web, tmp_path):
    url, _ = supervised_web
    raw_get(url, "/healthz")
    access_lines(tmp_path, "/healthz")
    files = [tmp_path / "supervisord.pid", *sorted((tmp_path / "log").iterdir())]
    assert {file.name for file in files} >= {"supervisord.pid", "supervisord.log", "web.log", "web-access.log"}
    assert {file.name: oct(stat.S_IMODE(file.stat().st_mode)) for file in files} == \
        {file.name: oct(0o600) for file in files}
